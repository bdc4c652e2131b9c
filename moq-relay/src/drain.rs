//! Graceful drain: on SIGTERM or SIGINT the relay refuses new connections, leaves the
//! cluster, and serves its sessions until they leave or `--drain-timeout` passes; then it
//! closes the rest with code 0. A second signal cuts the drain short.

use std::time::Duration;

use moq_cluster::Cluster;
use moq_transfork::transport::Endpoint;

use crate::sessions::Sessions;

/// How long the closes at the end of a drain may take to be acknowledged.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// The signals that start a drain (SIGTERM, SIGINT), installed once for the life of the
/// process so that a second one is never missed.
#[derive(Debug)]
pub(crate) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers.
    pub(crate) fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal, by name.
    ///
    /// # Cancel safety
    /// Cancel safe: a signal that arrives meanwhile is kept for the next call.
    pub(crate) async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}

/// What a drain acts on.
#[derive(Debug)]
pub(crate) struct Drain<'a> {
    /// The relay's QUIC endpoint: refuses from now on, closed at the end.
    pub(crate) endpoint: &'a Endpoint,
    /// The sessions being served.
    pub(crate) sessions: &'a Sessions,
    /// The cluster to withdraw from, if any.
    pub(crate) cluster: Option<&'a Cluster>,
    /// The most the sessions are served before they are closed.
    pub(crate) timeout: Duration,
}

impl Drain<'_> {
    /// Runs the drain to its end, or until a second signal from `signals`; the endpoint is
    /// closed either way (code 0).
    pub(crate) async fn run(self, signals: &mut Signals) {
        if let Some(cluster) = self.cluster {
            cluster.withdraw();
        }
        let drained = async {
            let clients = self.sessions.clients();
            tracing::info!(sessions = clients, timeout = ?self.timeout, "draining");
            match tokio::time::timeout(self.timeout, self.sessions.idle()).await {
                Ok(()) => tracing::info!("drain: no session left"),
                Err(_) => tracing::info!(
                    sessions = self.sessions.clients(),
                    "drain timeout: closing the remaining sessions"
                ),
            }
            self.sessions.close_all(CLOSE_GRACE).await;
            self.endpoint.close();
            let _ = tokio::time::timeout(CLOSE_GRACE, self.endpoint.wait_idle()).await;
        };
        tokio::select! {
            () = drained => {}
            () = refuse_all(self.endpoint) => {}
            signal = signals.next() => {
                tracing::warn!(%signal, "second signal: exiting at once");
                self.endpoint.close();
            }
        }
    }
}

/// Refuses every connection attempt at once (QUIC CONNECTION_REFUSED), so clients move on
/// to another relay instead of waiting for a handshake timeout. Never returns.
async fn refuse_all(endpoint: &Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tracing::debug!(remote = %incoming.remote_address(), "draining: connection refused");
        incoming.refuse();
    }
    std::future::pending().await
}
