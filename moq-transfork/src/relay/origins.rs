//! A registry of the tracks that sessions announce, used to route subscriptions to them: the
//! heart of a relay.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::model::{
    Announced, AnnouncedProducer, CacheConfig, Track, TrackConsumer, TrackProducer,
};
use crate::session::{Router, Session};
use crate::sync::lock;
use crate::{Error, Path};

mod pump;

use pump::Pump;

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
/// sequence numbers (the relay track forgets the old origin's sequences). Groups are forwarded
/// without copying: the relay track shares each upstream group's state. An origin whose
/// upstream subscription fails (refused, or reset) while it still offers the path is tried
/// again after a short delay (100 ms, doubling up to 1 s, at most 8 failures in a row), the
/// newest other origin feeding the relay track meanwhile; one that ended the track cleanly, or
/// failed 8 times, is tried again only once it withdraws the path and announces it again. When
/// no origin is left to try, the relay track ends as its last upstream subscription did: with
/// its error, or cleanly. A subscriber built on this crate refuses a group whose sequence it
/// already received (as a duplicate); a 0.8.0 subscriber ignores every group whose sequence is
/// not above the highest it has seen, so a handover to an origin that restarts its numbering
/// reaches it only once the numbers exceed the old ones.
///
/// # Limits
///
/// The registry holds at most [`max_announcements`](Self::with_max_announcements) paths
/// offered by sessions (a path offered by two sessions counts twice). A session whose
/// announcement would go beyond it has its announcements refused with
/// [`Error::BoundsExceeded`]: the session resets its announce stream with that code, and
/// every path it offered is withdrawn. The others keep theirs. Each announced path is held
/// once, however many tables and watchers refer to it ([`Path`] clones share their bytes).
///
/// Cheap to clone: clones share the registry.
///
/// # Examples
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn relay(endpoint: moq_transfork::transport::Endpoint) -> Result<(), moq_transfork::Error> {
/// use std::sync::Arc;
/// use moq_transfork::relay::Origins;
/// use moq_transfork::{Path, Session, SessionOptions};
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
#[derive(Clone)]
pub struct Origins {
    inner: Arc<OriginsInner>,
}

struct OriginsInner {
    announced: AnnouncedProducer,
    state: Mutex<State>,
    next_id: AtomicU64,
    max_announcements: usize,
}

#[derive(Default)]
struct State {
    /// Sessions offering each path, oldest first; the newest serves.
    routes: HashMap<Path, Vec<(u64, Session)>>,
    /// The (path, session) pairs in `routes`.
    announcements: usize,
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
            .field("announcements", &state.announcements)
            .field("relayed", &state.relays.len())
            .finish()
    }
}

impl Default for Origins {
    fn default() -> Self {
        Self::with_max_announcements(Self::DEFAULT_MAX_ANNOUNCEMENTS)
    }
}

impl Origins {
    /// The default of [`with_max_announcements`](Self::with_max_announcements).
    pub const DEFAULT_MAX_ANNOUNCEMENTS: usize = 65_536;

    /// An empty registry that holds at most [`DEFAULT_MAX_ANNOUNCEMENTS`] announcements.
    ///
    /// [`DEFAULT_MAX_ANNOUNCEMENTS`]: Self::DEFAULT_MAX_ANNOUNCEMENTS
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry that holds at most `max` announcements: paths offered by sessions,
    /// a path offered by two sessions counting twice (see [Limits](Self#limits)).
    pub fn with_max_announcements(max: usize) -> Self {
        Self {
            inner: Arc::new(OriginsInner {
                announced: AnnouncedProducer::new(),
                state: Mutex::default(),
                next_id: AtomicU64::new(0),
                max_announcements: max,
            }),
        }
    }

    /// The most announcements the registry holds (see [Limits](Self#limits)).
    pub fn max_announcements(&self) -> usize {
        self.inner.max_announcements
    }

    /// How many announcements the registry holds: paths offered by sessions, a path offered
    /// by two sessions counting twice.
    pub fn announcements(&self) -> usize {
        self.state().announcements
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
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
        let pump = Pump::new(self.clone(), path.clone(), id, producer, changed, origin);
        tokio::spawn(pump.run(upstream));
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
    /// When the registry is full (see [Limits](Self#limits)), the session's announcements are
    /// refused with [`Error::BoundsExceeded`], and its paths are withdrawn as its announce
    /// stream ends.
    ///
    /// # Cancel safety
    /// Cancelling withdraws nothing; call it for the life of the session.
    pub async fn serve(&self, session: &Session, prefix: Path) {
        self.serve_where(session, prefix, |_| true).await;
    }

    /// As [`serve`](Self::serve), but learns only the paths `allow` accepts: any other path
    /// the session announces is not routed and not offered to anyone. The first such path of
    /// the session is logged at info, the rest at debug, so a client cannot flood the log. A
    /// relay passes the scope of the client's token.
    ///
    /// # Cancel safety
    /// As [`serve`](Self::serve).
    pub async fn serve_where(
        &self,
        session: &Session,
        prefix: Path,
        allow: impl Fn(&Path) -> bool,
    ) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut announced = session.announced(prefix);
        let mut refused = false;
        let mut out_of_scope_logged = false;
        // Every path reported active is reported ended before the stream's last `None`, so
        // nothing needs to be remembered here to withdraw it.
        while let Some(event) = announced.next().await {
            match event {
                Announced::Active(_) if refused => {}
                Announced::Active(path) if !allow(&path) => {
                    if out_of_scope_logged {
                        tracing::debug!(%path, "announce outside the session's scope: not routed");
                    } else {
                        out_of_scope_logged = true;
                        tracing::info!(%path, "announce outside the session's scope: not routed (further ones are logged at debug)");
                    }
                }
                Announced::Active(path) => {
                    tracing::debug!(%path, "origin announced");
                    if !self.add(&path, id, session) {
                        tracing::info!(
                            %path,
                            max = self.inner.max_announcements,
                            "announcements refused: the relay holds its maximum"
                        );
                        announced.refuse(Error::BoundsExceeded);
                        refused = true;
                    }
                }
                Announced::Ended(path) => {
                    tracing::debug!(%path, "origin ended");
                    self.remove(&path, id);
                }
            }
        }
    }

    /// Records that session `id` offers `path`; false when the registry is full.
    fn add(&self, path: &Path, id: u64, session: &Session) -> bool {
        let mut state = self.state();
        if state.announcements >= self.inner.max_announcements {
            return false;
        }
        state.announcements += 1;
        // Most paths have one origin: no room reserved for more.
        let sessions = state
            .routes
            .entry(path.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        sessions.push((id, session.clone()));
        if sessions.len() == 1 {
            self.inner.announced.announce(path.clone());
        }
        state.notify(path);
        true
    }

    fn remove(&self, path: &Path, id: u64) {
        let mut state = self.state();
        let Some(sessions) = state.routes.get_mut(path) else {
            return;
        };
        let before = sessions.len();
        sessions.retain(|(current, _)| *current != id);
        let removed = before - sessions.len();
        if removed == 0 {
            // Never added (refused): nothing changed.
            return;
        }
        if sessions.is_empty() {
            state.routes.remove(path);
            self.inner.announced.unannounce(path);
        }
        state.announcements -= removed;
        state.withdrawn(path, id);
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
