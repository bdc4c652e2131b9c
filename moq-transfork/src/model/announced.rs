//! Announcements: the set of active track paths, and consumers that follow its changes.
//!
//! An [`AnnouncedProducer`] keeps the set of active paths. Each [`AnnouncedConsumer`] follows
//! the paths under its prefix: first every active one in ascending order, then the changes.
//! Pending changes are coalesced per path, so a consumer that never reads holds at most one
//! entry per distinct path.

use std::collections::{BTreeSet, HashMap};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::waiter::lock;
use super::Path;

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
    /// Tasks waiting in [`AnnouncedProducer::unused`].
    unused_wakers: Vec<Waker>,
}

/// What one consumer still has to hear about.
///
/// A path in `removals` was reported active and must be reported ended; a path in `additions` is
/// active and must be reported active. A path in both was re-announced after the consumer saw
/// it: a new instance, reported as `Ended` then `Active`.
#[derive(Debug)]
struct Pending {
    prefix: Path,
    removals: BTreeSet<Path>,
    additions: BTreeSet<Path>,
    waker: Option<Waker>,
}

impl Pending {
    /// Records that `path` became active; returns the waker to wake if it concerns us.
    fn announce(&mut self, path: &Path) -> Option<Waker> {
        if !path.has_prefix(&self.prefix) {
            return None;
        }
        self.additions.insert(path.clone());
        self.waker.take()
    }

    /// Records that `path` ended; returns the waker to wake if it concerns us.
    fn unannounce(&mut self, path: &Path) -> Option<Waker> {
        if !path.has_prefix(&self.prefix) {
            return None;
        }
        // Never reported active: forget it. Otherwise (seen, or seen and re-announced) report
        // the end.
        if !self.additions.remove(path) {
            self.removals.insert(path.clone());
        }
        self.waker.take()
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

    /// Resolves once no consumer remains: at once if there is none, otherwise when the last
    /// one is dropped. A session uses it to end an announce stream nobody follows any more.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn unused(&self) {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.consumers.is_empty() {
                return Poll::Ready(());
            }
            if !state.unused_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                state.unused_wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// A consumer of the paths that start with `prefix` (whole parts).
    pub fn subscribe_prefix(&self, prefix: Path) -> AnnouncedConsumer {
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        let additions = state
            .active
            .iter()
            .filter(|path| path.has_prefix(&prefix))
            .cloned()
            .collect();
        state.consumers.insert(
            id,
            Pending {
                prefix: prefix.clone(),
                removals: BTreeSet::new(),
                additions,
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
        let mut state = lock(&self.state);
        let closed = state.closed;
        let Some(pending) = state.consumers.get_mut(&self.id) else {
            return Poll::Ready(None);
        };
        if let Some(path) = pending.removals.pop_first() {
            return Poll::Ready(Some(Announced::Ended(path)));
        }
        if let Some(path) = pending.additions.pop_first() {
            return Poll::Ready(Some(Announced::Active(path)));
        }
        if closed {
            return Poll::Ready(None);
        }
        match &pending.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => pending.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Returns the next change, with the full path. When several are pending, every `Ended`
    /// comes before any `Active`, each group in ascending path order. Returns `None` once the
    /// producer is gone and every path this consumer saw active was reported `Ended`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a change is consumed only when this returns it.
    pub async fn next(&mut self) -> Option<Announced> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The number of changes waiting to be returned (at most one or two per distinct path).
    pub fn pending(&self) -> usize {
        let state = lock(&self.state);
        state.consumers.get(&self.id).map_or(0, |pending| {
            pending.removals.len() + pending.additions.len()
        })
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
