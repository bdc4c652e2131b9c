//! A registry of the tracks that sessions announce, used to route subscriptions to them: the
//! heart of a relay.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::{Announced, AnnouncedProducer, Track, TrackConsumer};
use crate::session::{Router, Session};
use crate::{Error, Path};

/// Tracks announced by a set of sessions, by exact path, and the session that serves each.
///
/// [`Origins::serve`] learns what a session announces. Every path is announced once through
/// [`Origins::announced`] however many sessions offer it, and withdrawn when the last one
/// stops. [`Origins::route`] (also the [`Router`] impl) subscribes to the newest session that
/// offers a path; the session deduplicates, so any number of local subscribers share one
/// upstream subscription per path.
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
    /// Sessions offering each path, oldest first; the newest serves.
    routes: Mutex<HashMap<Path, Vec<(u64, Session)>>>,
    next_id: AtomicU64,
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origins")
            .field("paths", &self.routes().len())
            .finish()
    }
}

impl Origins {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<Path, Vec<(u64, Session)>>> {
        self.inner
            .routes
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
        self.routes().contains_key(path)
    }

    /// The session that serves `path`: the one that announced it most recently.
    pub fn origin(&self, path: &Path) -> Option<Session> {
        self.routes()
            .get(path)
            .and_then(|sessions| sessions.last())
            .map(|(_, session)| session.clone())
    }

    /// Subscribes to `track` through the session that serves its path.
    ///
    /// The upstream subscription is shared by every local subscriber of the path, so it asks
    /// with neutral preferences (priority 0, descending, no expiry of its own) rather than the
    /// first subscriber's: each downstream subscription applies its own priority, order and
    /// expiry when it is served.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no session offers the path.
    pub fn route(&self, track: &Track) -> Result<TrackConsumer, Error> {
        let session = self.origin(&track.path).ok_or(Error::NotFound)?;
        Ok(session.subscribe(Track::new(track.path.clone())))
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
        let mut routes = self.routes();
        let sessions = routes.entry(path.clone()).or_default();
        sessions.push((id, session.clone()));
        if sessions.len() == 1 {
            self.inner.announced.announce(path.clone());
        }
    }

    fn remove(&self, path: &Path, id: u64) {
        let mut routes = self.routes();
        let Some(sessions) = routes.get_mut(path) else {
            return;
        };
        sessions.retain(|(current, _)| *current != id);
        if sessions.is_empty() {
            routes.remove(path);
            self.inner.announced.unannounce(path);
        }
    }
}

impl Router for Origins {
    fn route(&self, track: &Track) -> Result<TrackConsumer, Error> {
        Self::route(self, track)
    }
}
