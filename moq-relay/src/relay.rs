//! The relay's forwarding state: the origins its clients and the cluster announce, the
//! sessions it serves, and how each connection becomes a client session or a cluster link.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moq_cluster::{Cluster, LinkKind};
use moq_transfork::relay::Origins;
use moq_transfork::transport::{Connection, Endpoint, Incoming};
use moq_transfork::{Error, Path, Router, Session, SessionOptions, Track, TrackConsumer};
use tracing::Instrument;

use crate::sessions::{self, Admission};
use crate::{auth, metrics};

/// The forwarding state shared by all sessions.
#[derive(Clone)]
pub(crate) struct Relay {
    /// Paths announced by this relay's own clients.
    pub(crate) locals: Origins,
    /// Paths learned from other relays (clustering); offered to clients, never re-advertised.
    pub(crate) remotes: Origins,
    /// Linger, cache (one budget for all tracks) and limits of every session.
    pub(crate) options: SessionOptions,
    /// The connections being served, counted against the limits; live sessions are closed
    /// cleanly on shutdown.
    pub(crate) sessions: sessions::Sessions,
    next_session: Arc<AtomicU64>,
    /// Serves the links other relays of the cluster open to this one.
    pub(crate) cluster: Option<Cluster>,
    /// The most paths one client may announce (`--announce-max-per-session`).
    announce_per_session: usize,
    /// Token verification; `None` when the relay is open.
    pub(crate) auth: Option<Arc<auth::Auth>>,
    /// Sessions accepted, refused and open, for the metrics.
    pub(crate) counters: Arc<metrics::Counters>,
}

impl Relay {
    pub(crate) fn new(options: SessionOptions, limits: sessions::Limits) -> Self {
        Self {
            locals: Origins::new(),
            remotes: Origins::new(),
            options,
            sessions: sessions::Sessions::new(limits),
            next_session: Arc::default(),
            cluster: None,
            announce_per_session: SessionOptions::default().max_announced_paths,
            auth: None,
            counters: Arc::default(),
        }
    }

    pub(crate) fn with_auth(self, auth: Option<auth::Auth>) -> Self {
        Self {
            auth: auth.map(Arc::new),
            ..self
        }
    }

    /// Caps what clients may announce: `per_session` paths each, `total` in all (and
    /// `total` from the cluster; a cluster link may carry that many).
    pub(crate) fn with_announce_limits(self, per_session: usize, total: usize) -> Self {
        Self {
            locals: Origins::with_max_announcements(total),
            remotes: Origins::with_max_announcements(total),
            announce_per_session: per_session,
            ..self
        }
    }

    pub(crate) fn with_cluster(self, cluster: Cluster) -> Self {
        Self {
            cluster: Some(cluster),
            ..self
        }
    }

    /// Session options shared by client sessions and cluster links.
    pub(crate) fn options(&self) -> SessionOptions {
        SessionOptions {
            max_announced_paths: self.locals.max_announcements(),
            ..self.options.clone()
        }
    }

    pub(crate) async fn accept_all(&self, endpoint: &Endpoint) {
        while let Some(incoming) = endpoint.accept().await {
            let remote = incoming.remote_address();
            let validated = incoming.remote_address_validated();
            let slot = match self.sessions.admit(remote.ip(), validated) {
                Admission::Accept(slot) => slot,
                Admission::Retry => {
                    tracing::debug!(%remote, "address validation: retry sent");
                    incoming.retry();
                    continue;
                }
                Admission::Refuse(why) => {
                    tracing::debug!(%remote, %why, "connection refused");
                    self.counters.refused(metrics::Refused::Limit);
                    incoming.refuse();
                    continue;
                }
            };
            let id = self.next_session.fetch_add(1, Ordering::Relaxed);
            let span = tracing::info_span!(
                "session",
                id,
                remote = %remote,
                transport = tracing::field::Empty,
                root = tracing::field::Empty,
                kid = tracing::field::Empty,
            );
            let relay = self.clone();
            tokio::spawn(
                async move {
                    if let Err(err) = relay.serve(id, incoming, slot).await {
                        tracing::info!(%err, code = err.code(), "session failed");
                    }
                }
                .instrument(span),
            );
        }
    }

    /// Serves one client: it sees every local and remote path, its subscriptions are routed
    /// to local origins first, and what it publishes becomes a local origin. Links from other
    /// relays of the cluster go to the cluster instead.
    async fn serve(
        self,
        id: u64,
        incoming: Incoming,
        mut slot: sessions::Slot,
    ) -> Result<(), moq_transfork::Error> {
        // Boxed: the handshake's futures are large and would otherwise stay in this task's
        // state for the whole life of the session.
        let (session, scope, conn) = match Box::pin(self.handshake(incoming)).await {
            Ok(Handshake::Session(session, scope, conn)) => (session, scope, conn),
            Ok(Handshake::Cluster(cluster, kind, conn)) => {
                slot.established(id, None);
                return cluster.serve(kind, conn).await;
            }
            Err(err) => {
                self.counters.refused(metrics::Refused::of(&err));
                return Err(err);
            }
        };
        self.counters.accepted();
        slot.established(id, Some(&session));
        self.run_client(session, scope).await?;
        udp_totals(&conn);
        Ok(())
    }

    /// The QUIC and WebTransport handshakes (bounded in time by the transport), the token
    /// check when auth is on, then SETUP; or the hand-off of a cluster link.
    async fn handshake(&self, incoming: Incoming) -> Result<Handshake, moq_transfork::Error> {
        let conn = match &self.auth {
            // WebTransport: a refused token is answered with 401 before a session exists.
            Some(auth) => {
                incoming
                    .accept_checked(|url| {
                        let cluster = [LinkKind::Discovery, LinkKind::Peer]
                            .iter()
                            .any(|kind| url.path() == kind.url_path());
                        let token = url.query_pairs().find(|(key, _)| key == "jwt");
                        let token = token.as_ref().map(|(_, token)| token.as_ref());
                        if cluster {
                            auth.is_cluster(token)
                        } else {
                            auth.scope(token).is_ok()
                        }
                    })
                    .await?
            }
            None => incoming.accept().await?,
        };
        if let (Some(cluster), Some(kind)) = (&self.cluster, LinkKind::of(&conn)) {
            return Ok(Handshake::Cluster(cluster.clone(), kind, conn));
        }
        let router = ClientRouter {
            locals: self.locals.clone(),
            remotes: self.remotes.clone(),
        };
        let options = SessionOptions {
            announce: vec![self.locals.announced(), self.remotes.announced()],
            router: Some(Arc::new(router)),
            max_announced_paths: self.announce_per_session,
            ..self.options()
        };
        let Some(auth) = self.auth.clone() else {
            let session = Session::accept_with(conn.clone(), options).await?;
            return Ok(Handshake::Session(session, None, conn));
        };
        let mut granted = None;
        let session = Session::accept_authorized(conn.clone(), |token| {
            let scope = auth.scope(token)?;
            granted = Some(scope.clone());
            Ok(scoped(options, scope))
        })
        .await?;
        Ok(Handshake::Session(session, granted, conn))
    }

    /// Runs an accepted client session until it ends; with a `scope`, learns only the paths
    /// it may publish and closes it with Unauthorized when its token expires.
    async fn run_client(&self, session: Session, scope: Option<auth::Scope>) -> Result<(), Error> {
        let span = tracing::Span::current();
        span.record("transport", tracing::field::display(session.transport()));
        if let Some(scope) = &scope {
            span.record("root", scope.root().unwrap_or("(public)"));
            span.record("kid", scope.kid().unwrap_or("-"));
        }
        tracing::info!("session started");
        let _open = self.counters.open(session.transport());
        let expires_in = scope.as_ref().and_then(auth::Scope::expires_in);
        // Learn what the client publishes; this ends when the session does.
        let mut work = std::pin::pin!(async {
            match &scope {
                Some(scope) => {
                    let allow = |path: &Path| scope.may_publish(path);
                    self.locals.serve_where(&session, Path::new(), allow).await;
                }
                None => self.locals.serve(&session, Path::new()).await,
            }
            session.closed().await
        });
        let expiry = async {
            match expires_in {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            reason = &mut work => reason,
            () = expiry => {
                tracing::info!("token expired: closing the session");
                session.close(Error::Unauthorized);
                work.await
            }
        };
        tracing::info!(%reason, "session ended");
        Ok(())
    }
}

/// Logs, at debug, what a finished session's connection sent and received over UDP, and
/// what it lost. Datagrams per send call above 1 show GSO at work (quinn batches at most
/// 10); quinn counts no receive calls per connection, so GRO shows only on the endpoint (its
/// `gro` at bind).
fn udp_totals(conn: &Connection) {
    let stats = conn.stats();
    let (tx, rx) = (stats.udp_tx, stats.udp_rx);
    tracing::debug!(
        tx_datagrams = tx.datagrams,
        tx_ios = tx.ios,
        tx_bytes = tx.bytes,
        rx_datagrams = rx.datagrams,
        rx_bytes = rx.bytes,
        lost_packets = stats.path.lost_packets,
        lost_bytes = stats.path.lost_bytes,
        "UDP totals"
    );
}

/// `options` narrowed to `scope`: requests outside its `get` are answered NotFound and only
/// paths inside it are announced to the client.
fn scoped(options: SessionOptions, scope: auth::Scope) -> SessionOptions {
    let router = options.router.map(|inner| {
        Arc::new(auth::ScopedRouter {
            inner,
            scope: scope.clone(),
        }) as Arc<dyn Router>
    });
    SessionOptions {
        announce_filter: Some(Arc::new(move |path: &Path| scope.may_subscribe(path))),
        router,
        ..options
    }
}

/// Routes a client's requests to local origins first, then to remote ones.
struct ClientRouter {
    locals: Origins,
    remotes: Origins,
}

impl Router for ClientRouter {
    fn route(&self, track: &Track) -> Result<TrackConsumer, Error> {
        match self.locals.route(track) {
            Err(Error::NotFound) => self.remotes.route(track),
            routed => routed,
        }
    }

    fn cached(&self, path: &Path) -> Result<TrackConsumer, Error> {
        match self.locals.cached(path) {
            Err(Error::NotFound) => self.remotes.cached(path),
            cached => cached,
        }
    }
}

/// What a finished handshake turned out to be.
enum Handshake {
    /// A client session past SETUP, with the scope of its token when auth is on, and its
    /// connection (for its transport statistics).
    Session(Session, Option<auth::Scope>, Connection),
    /// A link from another relay of the cluster, served by the cluster.
    Cluster(Cluster, LinkKind, Connection),
}
