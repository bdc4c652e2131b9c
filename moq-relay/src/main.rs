//! `moq-relay`: a caching, deduplicating MoqTransfork relay.
//!
//! Publishers and subscribers connect over WebTransport (`https://`) or raw QUIC (`moqf://`) on
//! one UDP port. Every path a client announces is offered to every other client; a subscription
//! is routed to the session that announced the path, and however many subscribers a track has,
//! the relay holds one upstream subscription for it.
//!
//! With `--cluster-root`/`--cluster-node` it joins a cluster of relays (the `moq-cluster`
//! crate, docs/clustering.md): clients reach every broadcast of the cluster through it.

mod args;
mod auth;
mod config;
mod drain;
mod health;
mod http;
mod metrics;
mod reload;
mod sessions;
mod systemd;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use moq_cluster::{Cluster, ClusterConfig, LinkKind};
use moq_transfork::relay::Origins;
use moq_transfork::transport::{CertResolver, Connection, Endpoint, EndpointConfig, Incoming};
use moq_transfork::{Error, Path, Router, Session, SessionOptions, Track, TrackConsumer};
use tracing::Instrument;

use args::Args;
use sessions::Admission;

/// jemalloc, with background threads that return freed pages to the system while the relay
/// idles: glibc's per-thread arenas keep the memory of churned connections resident.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match config::load() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("moq-relay: error: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    args.init_logging();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("moq-relay: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    args.check()?;
    // Installed first: until then, these signals would end the process outright.
    let mut signals = drain::Signals::new().context("installing the signal handlers")?;
    let generated = args.tls_cert.is_empty();
    let source = if generated {
        let hosts = ["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        reload::Source::Generated(hosts.into())
    } else {
        reload::Source::Files {
            certs: args.tls_cert.clone(),
            keys: args.tls_key.clone(),
        }
    };
    let tls = source.load()?;
    let fingerprint = tls.fingerprints().into_iter().next().unwrap_or_default();

    let endpoint = Endpoint::bind_tuned(
        EndpointConfig {
            bind: args.bind,
            server: Some(tls),
            client: args.client_tls()?,
        },
        args.tuning(),
    )
    .context("cannot listen on udp")?;
    let addr = endpoint.local_addr().context("local address")?;
    let certs = endpoint.certificates().context("no server side")?.clone();
    tokio::spawn(reload::Reloader::new(certs.clone(), source)?.run());
    // HTTPS on TCP shows the certificates QUIC does, reloads included; the development
    // certificate gets plain HTTP.
    let https = if generated {
        None
    } else {
        Some(http::https_config(CertResolver::server_config(&certs)?))
    };

    let dev = args.dev || generated;
    let page = (dev || args.web) && !args.obs.no_http;

    let auth = auth::Auth::load(&args.auth_key, &args.auth_public)?;
    if auth.is_none() {
        tracing::warn!("no --auth-key given: anyone may publish and subscribe to any path");
    }
    let relay = Relay::new(args.session(), args.limits())
        .with_announce_limits(args.announce_max_per_session, args.announce_max_total)
        .with_auth(auth);
    let http = if args.obs.no_http {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on tcp {addr} for http"))?;
        let site = http::Site {
            fingerprint: dev.then(|| certs.clone()),
            page,
            api: http::Api {
                locals: relay.locals.clone(),
                remotes: relay.remotes.clone(),
                auth: relay.auth.clone(),
            },
        };
        Some(tokio::spawn(http::serve(listener, https.clone(), site)))
    };
    let cluster = Cluster::new(ClusterConfig {
        root: args.cluster_root.clone(),
        node: args.cluster_node.clone(),
        endpoint: endpoint.clone(),
        locals: relay.locals.clone(),
        remotes: relay.remotes.clone(),
        session: relay.options(),
        token: args.cluster_token()?,
    })?;
    let discovery = tokio::spawn({
        let cluster = cluster.clone();
        async move { cluster.run().await }
    });
    let health = health::Health::new(!cluster.is_root());
    health.set_listening();
    let reached = tokio::spawn({
        let (cluster, health) = (cluster.clone(), health.clone());
        async move {
            cluster.stats().wait_root_reached().await;
            health.set_cluster_reached();
        }
    });
    let metrics = match args.obs.metrics_bind {
        Some(bind) => {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on tcp {bind} for --metrics-bind"))?;
            let local = listener.local_addr().context("metrics address")?;
            let registry = metrics::registry(metrics::Sources {
                counters: relay.counters.clone(),
                stats: relay.options.stats.clone(),
                budget: relay.options.cache.budget.clone(),
                locals: relay.locals.clone(),
                remotes: relay.remotes.clone(),
                cluster: Some(cluster.clone()),
            });
            let task = tokio::spawn(metrics::serve(listener, registry, health.clone()));
            Some((local, task))
        }
        None => None,
    };

    if generated {
        tracing::warn!(
            "no --tls-cert given: using a generated self-signed certificate. \
             This is for DEVELOPMENT only; clients must pin its fingerprint or disable verification"
        );
    }
    let listeners = Listeners {
        http: (http.is_some()).then_some(if https.is_some() { "https" } else { "http" }),
        page,
        dev,
        metrics: metrics.as_ref().map(|(local, _)| *local),
    };
    print_banner(addr, &fingerprint, &listeners);

    let relay = relay.with_cluster(cluster);
    systemd::ready();
    tokio::select! {
        () = relay.accept_all(&endpoint) => {},
        signal = signals.next() => {
            tracing::info!(%signal, "shutting down");
        }
    }
    // The drain starts: /ready answers 503 and systemd hears STOPPING from here on.
    health.start_drain();
    systemd::stopping();
    let drain = drain::Drain {
        endpoint: &endpoint,
        sessions: &relay.sessions,
        cluster: relay.cluster.as_ref(),
        timeout: args.drain_timeout,
    };
    drain.run(&mut signals).await;
    discovery.abort();
    reached.abort();
    if let Some(http) = http {
        http.abort();
    }
    if let Some((_, metrics)) = metrics {
        metrics.abort();
    }
    Ok(())
}

/// What the TCP listeners serve, for the banner.
struct Listeners {
    /// `http` or `https` when the public listener is on.
    http: Option<&'static str>,
    page: bool,
    dev: bool,
    /// The metrics listener's address.
    metrics: Option<SocketAddr>,
}

fn print_banner(addr: SocketAddr, fingerprint: &str, listeners: &Listeners) {
    let host = match addr.ip() {
        ip if ip.is_unspecified() || ip.is_loopback() => "localhost".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    let port = addr.port();
    println!("moq-relay listening on {addr} (udp)");
    println!("  WebTransport: https://{host}:{port}/");
    println!("  raw QUIC:     moqf://{host}:{port}");
    if let Some(scheme) = listeners.http {
        println!("  HTTP API:     {scheme}://{host}:{port}/announced/");
    }
    if let Some(metrics) = listeners.metrics {
        println!("  metrics:      http://{metrics}/metrics");
    }
    if listeners.page {
        // Chromium reaches `localhost` over [::1] only: an IPv4-only relay needs its address.
        let page_host = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V4(ip) => ip.to_string(),
            _ => host.clone(),
        };
        let scheme = listeners.http.unwrap_or("http");
        println!("  browser page: {scheme}://{page_host}:{port}/");
    }
    println!("  certificate SHA-256 fingerprint: {fingerprint}");
    if listeners.dev && listeners.http.is_some() {
        println!("  fingerprint over http: http://{host}:{port}/fingerprint");
    }
}

/// The forwarding state shared by all sessions.
#[derive(Clone)]
struct Relay {
    /// Paths announced by this relay's own clients.
    locals: Origins,
    /// Paths learned from other relays (clustering); offered to clients, never re-advertised.
    remotes: Origins,
    /// Linger, cache (one budget for all tracks) and limits of every session.
    options: SessionOptions,
    /// The connections being served, counted against the limits; live sessions are closed
    /// cleanly on shutdown.
    sessions: sessions::Sessions,
    next_session: Arc<AtomicU64>,
    /// Serves the links other relays of the cluster open to this one.
    cluster: Option<Cluster>,
    /// The most paths one client may announce (`--announce-max-per-session`).
    announce_per_session: usize,
    /// Token verification; `None` when the relay is open.
    auth: Option<Arc<auth::Auth>>,
    /// Sessions accepted, refused and open, for the metrics.
    counters: Arc<metrics::Counters>,
}

impl Relay {
    fn new(options: SessionOptions, limits: sessions::Limits) -> Self {
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

    fn with_auth(self, auth: Option<auth::Auth>) -> Self {
        Self {
            auth: auth.map(Arc::new),
            ..self
        }
    }

    /// Caps what clients may announce: `per_session` paths each, `total` in all (and
    /// `total` from the cluster; a cluster link may carry that many).
    fn with_announce_limits(self, per_session: usize, total: usize) -> Self {
        Self {
            locals: Origins::with_max_announcements(total),
            remotes: Origins::with_max_announcements(total),
            announce_per_session: per_session,
            ..self
        }
    }

    fn with_cluster(self, cluster: Cluster) -> Self {
        Self {
            cluster: Some(cluster),
            ..self
        }
    }

    /// Session options shared by client sessions and cluster links.
    fn options(&self) -> SessionOptions {
        SessionOptions {
            max_announced_paths: self.locals.max_announcements(),
            ..self.options.clone()
        }
    }

    async fn accept_all(&self, endpoint: &Endpoint) {
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
        let (session, scope) = match Box::pin(self.handshake(incoming)).await {
            Ok(Handshake::Session(session, scope)) => (session, scope),
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
        self.run_client(session, scope).await
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
            let session = Session::accept_with(conn, options).await?;
            return Ok(Handshake::Session(session, None));
        };
        let mut granted = None;
        let session = Session::accept_authorized(conn, |token| {
            let scope = auth.scope(token)?;
            granted = Some(scope.clone());
            Ok(scoped(options, scope))
        })
        .await?;
        Ok(Handshake::Session(session, granted))
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
    /// A client session past SETUP, with the scope of its token when auth is on.
    Session(Session, Option<auth::Scope>),
    /// A link from another relay of the cluster, served by the cluster.
    Cluster(Cluster, LinkKind, Connection),
}
