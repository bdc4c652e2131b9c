//! A registry of the tracks that sessions announce, used to route subscriptions to them: the
//! heart of a relay.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use crate::model::{
    Announced, AnnouncedProducer, CacheConfig, GroupConsumer, Track, TrackConsumer, TrackProducer,
};
use crate::session::{Router, Session};
use crate::{Error, Path};

/// Tracks announced by a set of sessions, by exact path, and the session that serves each.
///
/// [`Origins::serve`] learns what a session announces. Every path is announced once through
/// [`Origins::announced`] however many sessions offer it, and withdrawn when the last one
/// stops. [`Origins::route`] (also the [`Router`] impl) serves a path from a relay-owned track,
/// shared by every local subscriber of the path and fed by one upstream subscription to the
/// newest session that offers the path.
///
/// # Handover
///
/// When the session serving a routed path changes while subscribers are attached (a newer
/// session announces the path, or the upstream subscription ends or fails while another session
/// still offers it), the relay track switches to the newest session offering the path: the
/// subscribers keep their subscription and receive the new origin's groups, whatever their
/// sequence numbers (the relay track forgets the old origin's sequences, see
/// [`TrackProducer::forget_groups`]). Groups are forwarded without copying
/// ([`TrackProducer::insert_group`]). When no other session offers the path, the relay track
/// ends as its upstream subscription did: with its error, or cleanly. A subscriber built on
/// this crate refuses a group whose sequence it already received (as a duplicate); a 0.8.0
/// subscriber ignores every group whose sequence is not above the highest it has seen, so a
/// handover to an origin that restarts its numbering reaches it only once the numbers exceed
/// the old ones.
///
/// Cheap to clone: clones share the registry.
///
/// # Examples
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn relay(endpoint: moq_transfork::transport::Endpoint) -> Result<(), moq_transfork::Error> {
/// use std::sync::Arc;
/// use moq_transfork::{Origins, Path, Session, SessionOptions};
///
/// let origins = Origins::new();
/// while let Some(incoming) = endpoint.accept().await {
///     let origins = origins.clone();
///     tokio::spawn(async move {
///         let options = SessionOptions {
///             announce: vec![origins.announced()],
///             router: Some(Arc::new(origins.clone())),
///             ..Default::default()
///         };
///         let session = Session::accept_with(incoming.accept().await?, options).await?;
///         // Route subscriptions for whatever this session publishes, until it leaves.
///         origins.serve(&session, Path::new()).await;
///         Ok::<_, moq_transfork::Error>(())
///     });
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Origins {
    inner: Arc<OriginsInner>,
}

#[derive(Default)]
struct OriginsInner {
    announced: AnnouncedProducer,
    state: Mutex<State>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Sessions offering each path, oldest first; the newest serves.
    routes: HashMap<Path, Vec<(u64, Session)>>,
    /// The relay track of each path with subscribers.
    relays: HashMap<Path, Relay>,
    next_relay: u64,
}

/// The cache of a relay track: no limits of its own. It holds only groups inserted from the
/// upstream track, which it evicts as soon as the upstream track does (but the latest), so the
/// upstream session's cache limits and budget ([`SessionOptions::cache`]) bound it.
///
/// [`SessionOptions::cache`]: crate::SessionOptions::cache
const RELAY_CACHE: CacheConfig = CacheConfig {
    max_groups: usize::MAX,
    max_bytes: u64::MAX,
    budget: None,
};

/// A relay-owned track and what its pump needs to hear.
struct Relay {
    id: u64,
    producer: TrackProducer,
    /// Notified when the sessions offering the path change.
    changed: Arc<Notify>,
    /// Origins that withdrew the path since the pump last looked (see [`Pump`]).
    withdrawn: Vec<u64>,
}

impl State {
    /// The newest session offering `path`.
    fn newest(&self, path: &Path) -> Option<(u64, Session)> {
        self.routes.get(path)?.last().cloned()
    }

    fn notify(&self, path: &Path) {
        if let Some(relay) = self.relays.get(path) {
            relay.changed.notify_one();
        }
    }

    /// Tells the pump of `path` that origin `id` withdrew it.
    fn withdrawn(&mut self, path: &Path, id: u64) {
        if let Some(relay) = self.relays.get_mut(path) {
            relay.withdrawn.push(id);
            relay.changed.notify_one();
        }
    }

    /// The origins that withdrew `path` since the last call by relay `id`'s pump.
    fn take_withdrawn(&mut self, path: &Path, id: u64) -> Vec<u64> {
        match self.relays.get_mut(path) {
            Some(relay) if relay.id == id => std::mem::take(&mut relay.withdrawn),
            _ => Vec::new(),
        }
    }

    /// Removes the relay of `path` if it is still relay `id`.
    fn remove_relay(&mut self, path: &Path, id: u64) {
        if self.relays.get(path).is_some_and(|relay| relay.id == id) {
            self.relays.remove(path);
        }
    }
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Origins")
            .field("paths", &state.routes.len())
            .field("relayed", &state.relays.len())
            .finish()
    }
}

impl Origins {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The announcements of every path in the registry, to offer to other sessions
    /// (see [`SessionOptions::announce`](crate::SessionOptions::announce)).
    pub fn announced(&self) -> AnnouncedProducer {
        self.inner.announced.clone()
    }

    /// True when some session offers `path`.
    pub fn contains(&self, path: &Path) -> bool {
        self.state().routes.contains_key(path)
    }

    /// The number of paths served from a relay track (paths with local subscribers).
    pub fn relayed(&self) -> usize {
        self.state().relays.len()
    }

    /// The session that serves `path`: the one that announced it most recently.
    pub fn origin(&self, path: &Path) -> Option<Session> {
        self.state().newest(path).map(|(_, session)| session)
    }

    /// Subscribes to `track` through the session that serves its path.
    ///
    /// Every local subscriber of the path shares one relay track, fed by one upstream
    /// subscription (see [Handover](Self#handover)). That subscription asks with neutral
    /// preferences (priority 0, descending, no expiry of its own) rather than the first
    /// subscriber's: each downstream subscription applies its own priority, order and expiry
    /// when it is served. Once the last consumer of the relay track is gone, the relay track is
    /// removed and the upstream subscription dropped (the upstream session ends it after its
    /// linger).
    ///
    /// # Errors
    /// [`Error::NotFound`] when no session offers the path.
    pub fn route(&self, track: &Track) -> Result<TrackConsumer, Error> {
        let path = &track.path;
        let mut state = self.state();
        let (origin, session) = state.newest(path).ok_or(Error::NotFound)?;
        if let Some(relay) = state.relays.get(path) {
            if !relay.producer.is_closed() {
                return Ok(relay.producer.subscribe());
            }
        }
        let (producer, consumer) = Track::new(path.clone()).produce_with(RELAY_CACHE);
        let id = state.next_relay;
        state.next_relay += 1;
        let changed = Arc::new(Notify::new());
        state.relays.insert(
            path.clone(),
            Relay {
                id,
                producer: producer.clone(),
                changed: changed.clone(),
                withdrawn: Vec::new(),
            },
        );
        drop(state);
        let upstream = session.subscribe(Track::new(path.clone()));
        let pump = Pump {
            origins: self.clone(),
            path: path.clone(),
            id,
            producer,
            changed,
            setbacks: HashMap::new(),
            current: Some(origin),
            last_end: None,
        };
        tokio::spawn(pump.run(Some(upstream)));
        Ok(consumer)
    }

    /// A consumer of the relay track of `path`, only if it has one (the path has local
    /// subscribers): what a FETCH is answered from. Unlike [`route`](Self::route), it never
    /// creates a relay track nor subscribes upstream.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `path` has no relay track.
    pub fn cached(&self, path: &Path) -> Result<TrackConsumer, Error> {
        let state = self.state();
        match state.relays.get(path) {
            Some(relay) if !relay.producer.is_closed() => Ok(relay.producer.subscribe()),
            _ => Err(Error::NotFound),
        }
    }

    /// Learns the paths `session` announces under `prefix`, until its announcements end (the
    /// session closes or the peer ends the stream); then withdraws them all.
    ///
    /// # Cancel safety
    /// Cancelling withdraws nothing; call it for the life of the session.
    pub async fn serve(&self, session: &Session, prefix: Path) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut announced = session.announced(prefix);
        let mut offered = HashSet::new();
        while let Some(event) = announced.next().await {
            match event {
                Announced::Active(path) => {
                    tracing::debug!(%path, "origin announced");
                    self.add(&path, id, session);
                    offered.insert(path);
                }
                Announced::Ended(path) => {
                    tracing::debug!(%path, "origin ended");
                    self.remove(&path, id);
                    offered.remove(&path);
                }
            }
        }
        for path in offered {
            self.remove(&path, id);
        }
    }

    fn add(&self, path: &Path, id: u64, session: &Session) {
        let mut state = self.state();
        let sessions = state.routes.entry(path.clone()).or_default();
        sessions.push((id, session.clone()));
        if sessions.len() == 1 {
            self.inner.announced.announce(path.clone());
        }
        state.notify(path);
    }

    fn remove(&self, path: &Path, id: u64) {
        let mut state = self.state();
        let Some(sessions) = state.routes.get_mut(path) else {
            return;
        };
        sessions.retain(|(current, _)| *current != id);
        if sessions.is_empty() {
            state.routes.remove(path);
            self.inner.announced.unannounce(path);
        }
        state.withdrawn(path, id);
    }
}

/// How long an origin whose upstream subscription failed, while it still offers the path, is
/// left alone before the pump tries it again: doubled after each failure in a row, up to
/// [`RETRY_MAX`]. A publisher may announce a path a moment before it can serve it (a released
/// moq-clock announces before it registers its track), so a refusal is retried, not final.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two tries of one origin.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Failures in a row (4.5 s of retries) after which an origin is no longer tried for the
/// relay track, until it withdraws the path (and announces it again).
const RETRY_ATTEMPTS: u32 = 8;

/// Why the pump does not use an origin now.
#[derive(Debug, Clone, Copy)]
struct Setback {
    /// Failures of its upstream subscription in a row.
    failures: u32,
    /// When it may be tried again; `None` when it is not tried again until it re-announces
    /// (it ended the track cleanly, or failed [`RETRY_ATTEMPTS`] times).
    retry: Option<Instant>,
}

impl Setback {
    /// The setback after one more failure, at `now`.
    fn failed(previous: Option<Self>, now: Instant) -> Self {
        let failures = previous.map_or(0, |s| s.failures) + 1;
        let retry = (failures < RETRY_ATTEMPTS).then(|| {
            let delay = RETRY_FIRST.saturating_mul(1 << (failures - 1).min(16));
            now + delay.min(RETRY_MAX)
        });
        Self { failures, retry }
    }
}

/// Feeds a relay track from the newest session offering its path.
///
/// It keeps no [`Session`], only its upstream subscription, so a session that has gone away is
/// released however long the relay track lives.
struct Pump {
    origins: Origins,
    path: Path,
    id: u64,
    producer: TrackProducer,
    changed: Arc<Notify>,
    /// Origins tried and failed (or ended) for this relay track, by origin id.
    setbacks: HashMap<u64, Setback>,
    /// The origin serving now, if any.
    current: Option<u64>,
    /// How the last upstream subscription ended: the end of the relay track when no origin
    /// is left (`None` for a clean end).
    last_end: Option<Error>,
}

/// What the pump does next.
enum Next {
    /// Go on with the current upstream subscription (or keep waiting for a retry).
    Stay,
    /// Subscribe to this origin instead.
    Switch(u64, Session),
    /// No origin is left: the relay track ends, and was removed from the registry.
    End,
}

impl Pump {
    async fn run(mut self, mut upstream: Option<TrackConsumer>) {
        tracing::debug!(path = %self.path, origin = ?self.current, "relay track");
        loop {
            let retry = self.next_retry();
            tokio::select! {
                biased;
                () = self.producer.unused() => {
                    let mut state = self.origins.state();
                    // Under the lock `route` subscribes with, so no consumer joins a relay track
                    // that is going away.
                    if self.producer.consumer_count() == 0 {
                        state.remove_relay(&self.path, self.id);
                        tracing::debug!(path = %self.path, "relay track unused");
                        return;
                    }
                }
                () = self.changed.notified() => {
                    // An origin that withdrew the path starts afresh if it announces it again.
                    for id in self.origins.state().take_withdrawn(&self.path, self.id) {
                        self.setbacks.remove(&id);
                    }
                    upstream = match self.next() {
                        Next::Stay => upstream,
                        Next::Switch(id, session) => Some(self.switch(id, &session)),
                        Next::End => return self.end(),
                    };
                }
                () = sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {
                    upstream = match self.next() {
                        Next::Stay => upstream,
                        Next::Switch(id, session) => Some(self.switch(id, &session)),
                        Next::End => return self.end(),
                    };
                }
                res = next_group(&mut upstream), if upstream.is_some() => match res {
                    Ok(Some(group)) => {
                        // The origin serves: its past failures are forgiven.
                        if let Some(current) = self.current {
                            self.setbacks.remove(&current);
                        }
                        if let Err(err) = self.producer.insert_group(group) {
                            tracing::debug!(path = %self.path, %err, "group not relayed");
                        }
                    }
                    end => {
                        // Never stay on an origin whose subscription ended: retry it later
                        // if it failed, and not at all if it ended the track cleanly.
                        upstream = None;
                        let now = Instant::now();
                        if let Some(current) = self.current.take() {
                            let previous = self.setbacks.get(&current).copied();
                            let setback = match &end {
                                Err(_) => Setback::failed(previous, now),
                                Ok(_) => Setback { failures: previous.map_or(0, |s| s.failures), retry: None },
                            };
                            tracing::debug!(path = %self.path, origin = current, ?end, ?setback, "upstream ended");
                            self.setbacks.insert(current, setback);
                        }
                        self.last_end = end.err();
                        upstream = match self.next() {
                            Next::Stay => upstream,
                            Next::Switch(id, session) => Some(self.switch(id, &session)),
                            Next::End => return self.end(),
                        };
                    }
                },
            }
        }
    }

    /// The earliest time an origin in backoff may be tried again, if any is still waiting.
    fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        self.setbacks
            .values()
            .filter_map(|setback| setback.retry)
            .filter(|retry| *retry > now)
            .min()
    }

    /// Decides which origin should serve now: the newest one offering the path that is not set
    /// back. Under the registry lock, so that ending removes the relay track before any new
    /// subscriber could join it.
    fn next(&mut self) -> Next {
        let now = Instant::now();
        let mut state = self.origins.state();
        let usable = |id: &u64| {
            self.setbacks
                .get(id)
                .is_none_or(|setback| setback.retry.is_some_and(|retry| retry <= now))
        };
        let offered = state
            .routes
            .get(&self.path)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some((id, session)) = offered.iter().rev().find(|(id, _)| usable(id)) {
            if Some(*id) == self.current {
                return Next::Stay;
            }
            return Next::Switch(*id, session.clone());
        }
        // Nothing usable now. The current origin goes on serving, even if it withdrew the path;
        // without one, wait for an origin in backoff that still offers the path.
        let waiting = offered.iter().any(|(id, _)| {
            self.setbacks
                .get(id)
                .is_some_and(|setback| setback.retry.is_some_and(|retry| retry > now))
        });
        if self.current.is_some() || waiting {
            return Next::Stay;
        }
        state.remove_relay(&self.path, self.id);
        Next::End
    }

    /// Ends the relay track as its last upstream subscription did, once no origin is left.
    fn end(self) {
        tracing::debug!(path = %self.path, end = ?self.last_end, "relay track ended");
        if let Some(err) = self.last_end {
            self.producer.close(err);
        }
    }

    /// Subscribes to origin `id`; the old upstream subscription is dropped by the caller's
    /// assignment. The relay track forgets the old origin's sequences, which the new one may
    /// reuse.
    fn switch(&mut self, id: u64, session: &Session) -> TrackConsumer {
        tracing::debug!(path = %self.path, from = ?self.current, to = id, "origin changed");
        self.current = Some(id);
        let upstream = session.subscribe(Track::new(self.path.clone()));
        self.producer.forget_groups();
        upstream
    }
}

/// The next group of the upstream subscription; never called without one.
async fn next_group(upstream: &mut Option<TrackConsumer>) -> Result<Option<GroupConsumer>, Error> {
    match upstream {
        Some(upstream) => upstream.next_group().await,
        None => std::future::pending().await,
    }
}

impl Router for Origins {
    fn route(&self, track: &Track) -> Result<TrackConsumer, Error> {
        Self::route(self, track)
    }

    fn cached(&self, path: &Path) -> Result<TrackConsumer, Error> {
        Self::cached(self, path)
    }
}
