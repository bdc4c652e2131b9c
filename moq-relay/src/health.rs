//! Liveness and readiness, as `/health` and `/ready` report them on the metrics listener.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;

/// The relay's readiness. Cheap to clone: clones share the state.
#[derive(Clone, Debug)]
pub(crate) struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The QUIC listener is up.
    listening: AtomicBool,
    /// The cluster root has been reached at least once, or there is no root to reach.
    cluster_reached: AtomicBool,
    /// A drain has started: the relay takes no new sessions.
    draining: AtomicBool,
}

impl Health {
    /// Not ready yet; `cluster_root` says whether readiness waits for the cluster root.
    pub(crate) fn new(cluster_root: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                listening: AtomicBool::new(false),
                cluster_reached: AtomicBool::new(!cluster_root),
                draining: AtomicBool::new(false),
            }),
        }
    }

    /// The QUIC listener is up.
    pub(crate) fn set_listening(&self) {
        self.inner.listening.store(true, Ordering::Relaxed);
    }

    /// The cluster root has been reached (once is enough: the relay keeps serving its own
    /// clients while the root is away).
    pub(crate) fn set_cluster_reached(&self) {
        self.inner.cluster_reached.store(true, Ordering::Relaxed);
    }

    /// The relay drains: from now on it is never ready again.
    pub(crate) fn start_drain(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    /// What `/ready` answers: 200 once listening and the cluster root (if any) was reached,
    /// 503 before and while draining, with the reason in the body.
    pub(crate) fn readiness(&self) -> (StatusCode, &'static str) {
        let inner = &self.inner;
        if inner.draining.load(Ordering::Relaxed) {
            (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        } else if !inner.listening.load(Ordering::Relaxed) {
            (StatusCode::SERVICE_UNAVAILABLE, "not listening yet\n")
        } else if !inner.cluster_reached.load(Ordering::Relaxed) {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster root not reached yet\n",
            )
        } else {
            (StatusCode::OK, "ready\n")
        }
    }

    /// What `/health` answers: 200 while the process serves HTTP at all.
    pub(crate) fn liveness(&self) -> (StatusCode, &'static str) {
        (StatusCode::OK, "ok\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_listening_and_the_root_reached_until_the_drain() {
        let health = Health::new(true);
        assert_eq!(health.readiness().0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_listening();
        assert_eq!(health.readiness().1, "cluster root not reached yet\n");
        health.set_cluster_reached();
        assert_eq!(health.readiness().0, StatusCode::OK);
        health.start_drain();
        assert_eq!(
            health.readiness(),
            (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        );
        assert_eq!(health.liveness().0, StatusCode::OK);
    }

    #[test]
    fn without_a_root_listening_is_enough() {
        let health = Health::new(false);
        health.set_listening();
        assert_eq!(health.readiness().0, StatusCode::OK);
    }
}
