//! Announcements: the set of active track paths, and consumers that follow its changes.
//!
//! An [`AnnouncedProducer`] keeps the set of active paths. Each [`AnnouncedConsumer`] follows
//! the paths under its prefix: first every active one in ascending order, then the changes.
//!
//! Consumers share the producer's set rather than copy it. A new consumer holds only a cursor
//! into the set, which it walks one path per call, so subscribing costs the same whether one
//! path is active or a million, and no call holds the lock for more than one step. Only the
//! changes to paths a consumer has already passed are recorded for it, coalesced per path,
//! and a [`Path`] is a shared pointer: a consumer that never reads holds at most two pointers
//! per distinct path that changed.

use std::collections::{BTreeSet, HashMap};
use std::future::poll_fn;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::Path;
use crate::sync::lock;
use crate::Error;

/// A change in the set of active paths, with the full path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Announced {
    /// The path became active.
    Active(Path),
    /// The path is no longer active.
    Ended(Path),
}

impl Announced {
    /// The path that changed.
    pub fn path(&self) -> &Path {
        match self {
            Self::Active(path) | Self::Ended(path) => path,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    active: BTreeSet<Path>,
    consumers: HashMap<u64, Pending>,
    next_id: u64,
    producers: usize,
    closed: bool,
    /// Set by [`AnnouncedConsumer::refuse`].
    refused: Option<Error>,
    /// Tasks waiting in [`AnnouncedProducer::unused`].
    unused_wakers: Vec<Waker>,
}

/// How far a consumer's first pass over the active set has gone.
#[derive(Debug)]
enum Scan {
    /// Not started: every active path under the prefix is still to be reported.
    Start,
    /// The paths up to and including this one were reported if they were active when passed;
    /// the later ones are still to be read from the active set itself.
    After(Path),
    /// Every path has been passed.
    Done,
}

/// What one consumer still has to hear about.
///
/// The first pass reports the active paths from the shared set. A change to a path the pass
/// has not reached needs no record: the pass reports the path as it then is. For a path
/// already passed, a path in `removals` was reported active and must be reported ended, and
/// a path in `additions` is active and must be reported active. A path in both was
/// re-announced after the consumer saw it: a new instance, reported as `Ended` then `Active`.
#[derive(Debug)]
struct Pending {
    prefix: Path,
    scan: Scan,
    removals: BTreeSet<Path>,
    additions: BTreeSet<Path>,
    waker: Option<Waker>,
}

impl Pending {
    /// True when the first pass has not reached `path` yet.
    fn ahead(&self, path: &Path) -> bool {
        match &self.scan {
            Scan::Start => true,
            Scan::After(last) => path > last,
            Scan::Done => false,
        }
    }

    /// Records that `path` became active; returns the waker to wake if it concerns us.
    fn announce(&mut self, path: &Path) -> Option<Waker> {
        if !path.has_prefix(&self.prefix) {
            return None;
        }
        if !self.ahead(path) {
            self.additions.insert(path.clone());
        }
        self.waker.take()
    }

    /// Records that `path` ended; returns the waker to wake if it concerns us.
    fn unannounce(&mut self, path: &Path) -> Option<Waker> {
        if !path.has_prefix(&self.prefix) {
            return None;
        }
        // Never reported active: forget it. Otherwise (seen, or seen and re-announced) report
        // the end.
        if !self.ahead(path) && !self.additions.remove(path) {
            self.removals.insert(path.clone());
        }
        self.waker.take()
    }

    /// The next step of the first pass: the next active path under the prefix, if any.
    fn scan(&mut self, active: &BTreeSet<Path>) -> Option<Path> {
        // Paths under a prefix are contiguous in the order, starting at the prefix itself.
        let from = match &self.scan {
            Scan::Start => Bound::Included(&self.prefix),
            Scan::After(last) => Bound::Excluded(last),
            Scan::Done => return None,
        };
        let next = active
            .range((from, Bound::Unbounded))
            .next()
            .filter(|path| path.has_prefix(&self.prefix))
            .cloned();
        self.scan = match &next {
            Some(path) => Scan::After(path.clone()),
            None => Scan::Done,
        };
        next
    }
}

fn wake(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

/// Announces and unannounces paths. Clones share the same set.
///
/// When the last clone is dropped, every consumer receives `Ended` for each path it saw active,
/// then `None`.
///
/// ```
/// use moq_transfork::model::{Announced, AnnouncedProducer};
/// use moq_transfork::Path;
///
/// # futures::executor::block_on(async {
/// let producer = AnnouncedProducer::new();
/// producer.announce(Path::from_iter(["room", "alice"]));
/// let mut consumer = producer.subscribe_prefix(Path::from_iter(["room"]));
/// let alice = Path::from_iter(["room", "alice"]);
/// assert_eq!(consumer.next().await, Some(Announced::Active(alice.clone())));
/// drop(producer);
/// assert_eq!(consumer.next().await, Some(Announced::Ended(alice)));
/// assert_eq!(consumer.next().await, None);
/// # });
/// ```
#[derive(Debug)]
pub struct AnnouncedProducer {
    state: Arc<Mutex<State>>,
}

impl AnnouncedProducer {
    /// An empty set of active paths.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                producers: 1,
                ..State::default()
            })),
        }
    }

    /// Marks `path` active; returns true if it was not already.
    pub fn announce(&self, path: Path) -> bool {
        let wakers: Vec<Waker> = {
            let mut state = lock(&self.state);
            if state.active.contains(&path) {
                return false;
            }
            let wakers = state
                .consumers
                .values_mut()
                .filter_map(|pending| pending.announce(&path))
                .collect();
            state.active.insert(path);
            wakers
        };
        wake(wakers);
        true
    }

    /// Marks `path` inactive; returns true if it was active.
    pub fn unannounce(&self, path: &Path) -> bool {
        let wakers: Vec<Waker> = {
            let mut state = lock(&self.state);
            if !state.active.remove(path) {
                return false;
            }
            state
                .consumers
                .values_mut()
                .filter_map(|pending| pending.unannounce(path))
                .collect()
        };
        wake(wakers);
        true
    }

    /// True if `path` is active.
    pub fn is_active(&self, path: &Path) -> bool {
        lock(&self.state).active.contains(path)
    }

    /// Every active path, in ascending order.
    pub fn active(&self) -> Vec<Path> {
        lock(&self.state).active.iter().cloned().collect()
    }

    /// A consumer of every path.
    pub fn subscribe(&self) -> AnnouncedConsumer {
        self.subscribe_prefix(Path::new())
    }

    /// The number of live consumers.
    pub fn consumer_count(&self) -> usize {
        lock(&self.state).consumers.len()
    }

    /// Resolves once no consumer remains (at once if there is none, otherwise when the last
    /// one is dropped), or once a consumer has refused the announcements (see
    /// [`refusal`](Self::refusal)). A session uses it to end an announce stream nobody follows
    /// any more, or to reset one whose announcements were refused.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn unused(&self) {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.consumers.is_empty() || state.refused.is_some() {
                return Poll::Ready(());
            }
            if !state.unused_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                state.unused_wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// The error a consumer refused these announcements with, if one did
    /// ([`AnnouncedConsumer::refuse`]).
    pub fn refusal(&self) -> Option<Error> {
        lock(&self.state).refused.clone()
    }

    /// A consumer of the paths that start with `prefix` (whole parts).
    ///
    /// It copies nothing: it reads the active paths from the shared set as it goes.
    pub fn subscribe_prefix(&self, prefix: Path) -> AnnouncedConsumer {
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        state.consumers.insert(
            id,
            Pending {
                prefix: prefix.clone(),
                scan: Scan::Start,
                removals: BTreeSet::new(),
                additions: BTreeSet::new(),
                waker: None,
            },
        );
        AnnouncedConsumer {
            state: self.state.clone(),
            id,
            prefix,
        }
    }
}

impl Default for AnnouncedProducer {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for AnnouncedProducer {
    fn clone(&self) -> Self {
        lock(&self.state).producers += 1;
        Self {
            state: self.state.clone(),
        }
    }
}

impl Drop for AnnouncedProducer {
    fn drop(&mut self) {
        let wakers: Vec<Waker> = {
            let mut state = lock(&self.state);
            state.producers -= 1;
            if state.producers > 0 {
                return;
            }
            state.closed = true;
            let active = std::mem::take(&mut state.active);
            state
                .consumers
                .values_mut()
                .filter_map(|pending| {
                    // Every consumer must wake, even with nothing to end, to see `None`.
                    let mut woken = None;
                    for path in &active {
                        woken = pending.unannounce(path).or(woken);
                    }
                    woken.or_else(|| pending.waker.take())
                })
                .collect()
        };
        wake(wakers);
    }
}

/// Follows the active paths under a prefix: every active path first (ascending), then each
/// change. Yields `None` after the producer is gone and every `Ended` was delivered.
#[derive(Debug)]
pub struct AnnouncedConsumer {
    state: Arc<Mutex<State>>,
    id: u64,
    prefix: Path,
}

impl AnnouncedConsumer {
    /// The prefix this consumer follows.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Polls for the next change; see [`next`](Self::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Announced>> {
        let mut guard = lock(&self.state);
        let State {
            active,
            consumers,
            closed,
            ..
        } = &mut *guard;
        let Some(pending) = consumers.get_mut(&self.id) else {
            return Poll::Ready(None);
        };
        if let Some(path) = pending.scan(active) {
            return Poll::Ready(Some(Announced::Active(path)));
        }
        if let Some(path) = pending.removals.pop_first() {
            return Poll::Ready(Some(Announced::Ended(path)));
        }
        if let Some(path) = pending.additions.pop_first() {
            return Poll::Ready(Some(Announced::Active(path)));
        }
        if *closed {
            return Poll::Ready(None);
        }
        match &pending.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => pending.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Returns the next change, with the full path. The paths active when the consumer was
    /// created come first, in ascending order. Then, when several changes are pending, every
    /// `Ended` comes before any `Active`, each group in ascending path order. Returns `None`
    /// once the producer is gone and every path this consumer saw active was reported `Ended`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a change is consumed only when this returns it.
    pub async fn next(&mut self) -> Option<Announced> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The number of changes recorded for this consumer (at most one or two per distinct
    /// path), besides the active paths its first pass has yet to read from the shared set.
    pub fn pending(&self) -> usize {
        let state = lock(&self.state);
        state.consumers.get(&self.id).map_or(0, |pending| {
            pending.removals.len() + pending.additions.len()
        })
    }

    /// True when this consumer has returned `path` as `Active` and not yet as `Ended`: what
    /// its reader believes is active. A session that merges several sources uses it to
    /// announce a path offered by two of them once, without a table of its own.
    pub fn reported(&self, path: &Path) -> bool {
        let state = lock(&self.state);
        let Some(pending) = state.consumers.get(&self.id) else {
            return false;
        };
        if !path.has_prefix(&pending.prefix) {
            return false;
        }
        // An end still to report: the reader believes it active (also when re-announced).
        if pending.removals.contains(path) {
            return true;
        }
        if pending.additions.contains(path) || pending.ahead(path) {
            return false;
        }
        // Passed, with no change pending: the reader's view is the set's.
        state.active.contains(path)
    }

    /// Refuses these announcements with `err`: the producer's owner learns it through
    /// [`AnnouncedProducer::unused`] and [`AnnouncedProducer::refusal`]. A session resets
    /// the announce stream with `err`'s code, which ends the peer's paths. The consumer keeps
    /// receiving changes, so its owner can withdraw what it learnt as the `Ended`s arrive.
    /// Only the first refusal counts.
    pub fn refuse(&self, err: Error) {
        let wakers = {
            let mut state = lock(&self.state);
            if state.refused.is_some() {
                return;
            }
            state.refused = Some(err);
            std::mem::take(&mut state.unused_wakers)
        };
        wake(wakers);
    }
}

impl Drop for AnnouncedConsumer {
    fn drop(&mut self) {
        let wakers = {
            let mut state = lock(&self.state);
            state.consumers.remove(&self.id);
            if state.consumers.is_empty() {
                std::mem::take(&mut state.unused_wakers)
            } else {
                Vec::new()
            }
        };
        wake(wakers);
    }
}
