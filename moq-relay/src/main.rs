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
mod relay;
mod reload;
mod sessions;
mod sockets;
mod systemd;

use std::net::SocketAddr;

use anyhow::Context;
use moq_cluster::{Cluster, ClusterConfig};
use moq_transfork::transport::{CertResolver, EndpointConfig};

use args::Args;
use relay::Relay;

/// jemalloc, with background threads that return freed pages to the system while the relay
/// idles: glibc's per-thread arenas keep the memory of churned connections resident.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let args = match config::load() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("moq-relay: error: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    args.init_logging();
    // Built after the settings are read: --workers sizes it.
    let result = args
        .runtime()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
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

    let (endpoint, listener) = sockets::bind(
        EndpointConfig {
            bind: args.bind,
            server: Some(tls),
            client: args.client_tls()?,
        },
        args.tuning(),
        !args.obs.no_http,
    )
    .await?;
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
    let http = if let Some(listener) = listener {
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
    } else {
        None
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
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!("  workers:      {workers}");
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
