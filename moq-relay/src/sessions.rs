//! The live client sessions, so that shutdown can close each one with a clean code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use moq_transfork::{Error, Session};

/// Every live session by id. Cheap to clone: clones share the table.
#[derive(Clone, Default)]
pub(crate) struct Sessions {
    live: Arc<Mutex<HashMap<u64, Session>>>,
}

/// Removes its session from the table when dropped.
pub(crate) struct Registered {
    sessions: Sessions,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.live().remove(&self.id);
    }
}

impl Sessions {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, Session>> {
        self.live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Records `session` until the returned guard is dropped.
    pub(crate) fn register(&self, id: u64, session: &Session) -> Registered {
        self.live().insert(id, session.clone());
        Registered {
            sessions: self.clone(),
            id,
        }
    }

    /// Closes every live session with [`Error::Cancel`] (code 0; on WebTransport with a
    /// CLOSE_WEBTRANSPORT_SESSION capsule) and waits, at most `grace`, until the peers have
    /// acknowledged.
    pub(crate) async fn close_all(&self, grace: Duration) {
        let sessions: Vec<Session> = self.live().values().cloned().collect();
        tracing::info!(sessions = sessions.len(), "closing sessions");
        for session in &sessions {
            session.close(Error::Cancel);
        }
        // Each ends on its own, so waiting in turn takes as long as the slowest.
        let closed = async {
            for session in &sessions {
                session.closed().await;
            }
        };
        let _ = tokio::time::timeout(grace, closed).await;
    }
}
