//! Prometheus metrics and the internal listener of `--metrics-bind` (`/metrics`, `/health`,
//! `/ready`; docs/operations.md).
//!
//! Nothing is counted here on the hot path: sessions count into the library's
//! [`SessionStats`] (relaxed atomics), and a [`Collector`] reads those, the cache budget, the
//! origins and the cluster at scrape time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use moq_cluster::Cluster;
use moq_transfork::relay::Origins;
use moq_transfork::transport::TransportKind;
use moq_transfork::{CacheBudget, Error, SessionStats, TransportError};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::health::Health;

/// The flags of the operator's listeners.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ObsArgs {
    /// Serve Prometheus metrics at /metrics, and /health and /ready, over plain HTTP on this
    /// TCP address (keep it internal). Off by default.
    #[arg(long, value_name = "ADDR", env = "MOQ_RELAY_METRICS_BIND")]
    pub(crate) metrics_bind: Option<SocketAddr>,

    /// Do not serve HTTP(S) on TCP at the --bind address (the HTTP API, /fingerprint and the
    /// browser page).
    #[arg(long, env = "MOQ_RELAY_NO_HTTP")]
    pub(crate) no_http: bool,
}

/// Why a connection attempt got no session: the `reason` label of
/// `moq_relay_sessions_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// --max-sessions or --max-sessions-per-ip.
    Limit,
    /// A token that does not verify, or none where one is needed.
    Auth,
    /// The QUIC, WebTransport or SETUP handshake took too long.
    HandshakeTimeout,
    /// No common protocol version.
    Version,
    /// Any other handshake failure (the client went away, a protocol error).
    Other,
}

impl Refused {
    const ALL: [Self; 5] = [
        Self::Limit,
        Self::Auth,
        Self::HandshakeTimeout,
        Self::Version,
        Self::Other,
    ];

    /// The reason a handshake failed with `err`.
    pub(crate) fn of(err: &Error) -> Self {
        match err {
            Error::Unauthorized => Self::Auth,
            Error::Version => Self::Version,
            // The library's QUIC, WebTransport and SETUP deadlines.
            Error::Transport(TransportError::Timeout(_)) => Self::HandshakeTimeout,
            _ => Self::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Limit => "limit",
            Self::Auth => "auth",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::Version => "version",
            Self::Other => "other",
        }
    }
}

/// The relay's own counters: sessions, per connection (never per frame).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    open_webtransport: AtomicU64,
    open_quic: AtomicU64,
    accepted: AtomicU64,
    refused: [AtomicU64; Refused::ALL.len()],
}

impl Counters {
    /// A client session was set up.
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection attempt got no session.
    pub(crate) fn refused(&self, why: Refused) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a client session as open until the guard drops.
    pub(crate) fn open(&self, transport: TransportKind) -> Open<'_> {
        let gauge = match transport {
            TransportKind::WebTransport => &self.open_webtransport,
            _ => &self.open_quic,
        };
        gauge.fetch_add(1, Ordering::Relaxed);
        Open(gauge)
    }
}

/// One open session, uncounted on drop.
pub(crate) struct Open<'a>(&'a AtomicU64);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a scrape reads: every source of the relay's series.
#[derive(Debug)]
pub(crate) struct Sources {
    pub(crate) counters: Arc<Counters>,
    pub(crate) stats: Arc<SessionStats>,
    pub(crate) budget: Option<Arc<CacheBudget>>,
    pub(crate) locals: Origins,
    pub(crate) remotes: Origins,
    pub(crate) cluster: Option<Cluster>,
}

/// Writes one series without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(metric),
        _ => ConstGauge::new(gauge(value)).encode(metric),
    }
}

/// Writes one series with one label, a sample per `(label value, value)`.
fn family<'v>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    label: &str,
    samples: impl IntoIterator<Item = (&'v str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (value_label, value) in samples {
        let labels = [(label, value_label)];
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(gauge(value)).encode(sample)?,
        }
    }
    Ok(())
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The `code` label values of stream resets: wire codes 0 to 16, then `other`.
const CODES: [&str; 18] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "other",
];

impl Collector for Sources {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        family(
            &mut e,
            ("sessions_open", "Client sessions open now.", Gauge),
            "transport",
            [
                ("webtransport", load(&c.open_webtransport)),
                ("quic", load(&c.open_quic)),
            ],
        )?;
        let help = "Client sessions set up (past SETUP).";
        single(
            &mut e,
            "sessions_accepted",
            help,
            Counter,
            load(&c.accepted),
        )?;
        family(
            &mut e,
            (
                "sessions_refused",
                "Connection attempts that got no session, by reason.",
                Counter,
            ),
            "reason",
            Refused::ALL.map(|why| (why.label(), load(&c.refused[why as usize]))),
        )?;

        let s = self.stats.snapshot();
        let series = [
            (
                "subscriptions_downstream",
                "Subscriptions the relay serves to its peers now.",
                Gauge,
                s.subscriptions_downstream,
            ),
            (
                "subscriptions_upstream",
                "Subscriptions the relay holds on publishers and cluster peers now.",
                Gauge,
                s.subscriptions_upstream,
            ),
            (
                "groups_received",
                "Groups received from publishers.",
                Counter,
                s.groups_received,
            ),
            (
                "frames_received",
                "Frames received from publishers.",
                Counter,
                s.frames_received,
            ),
            (
                "bytes_received",
                "Frame payload bytes received from publishers.",
                Counter,
                s.bytes_received,
            ),
            (
                "groups_sent",
                "Groups sent to subscribers.",
                Counter,
                s.groups_sent,
            ),
            (
                "frames_sent",
                "Frames sent to subscribers.",
                Counter,
                s.frames_sent,
            ),
            (
                "bytes_sent",
                "Frame payload bytes sent to subscribers.",
                Counter,
                s.bytes_sent,
            ),
            (
                "groups_dropped",
                "Groups dropped (GROUP_DROP) because a subscriber fell behind.",
                Counter,
                s.groups_dropped,
            ),
        ];
        for (name, help, kind, value) in series {
            single(&mut e, name, help, kind, value)?;
        }
        let mut resets = [0u64; CODES.len()];
        for (code, count) in self.stats.resets() {
            let slot = code.map_or(CODES.len() - 1, |code| code as usize);
            resets[slot.min(CODES.len() - 1)] += count;
        }
        family(
            &mut e,
            (
                "stream_resets",
                "Streams reset or stopped by the relay, by wire error code.",
                Counter,
            ),
            "code",
            CODES
                .iter()
                .zip(resets)
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| (*c, n)),
        )?;

        family(
            &mut e,
            (
                "announced_paths",
                "Announcements held: from clients (local) and from the cluster (remote).",
                Gauge,
            ),
            "origin",
            [
                ("local", self.locals.announcements() as u64),
                ("remote", self.remotes.announcements() as u64),
            ],
        )?;
        let budget = self.budget.as_deref();
        let help = "Frame payload bytes held by the track caches.";
        single(
            &mut e,
            "cache_bytes",
            help,
            Gauge,
            budget.map_or(0, CacheBudget::used),
        )?;
        let help = "Groups evicted from the track caches.";
        let evictions = budget.map_or(0, CacheBudget::evictions);
        single(&mut e, "cache_evictions", help, Counter, evictions)?;

        let cluster = self.cluster.as_ref().map(Cluster::stats);
        let help = "Peer links to other cluster members up now.";
        let peers = cluster.map_or(0, |stats| stats.peers_connected());
        single(&mut e, "cluster_peers_connected", help, Gauge, peers)?;
        let help = "Cluster links dialed again after a drop or a failed dial.";
        let redials = cluster.map_or(0, |stats| stats.redials());
        single(&mut e, "cluster_redials", help, Counter, redials)
    }
}

/// The registry of every `moq_relay_` series.
pub(crate) fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::with_prefix("moq_relay");
    registry.register_collector(Box::new(sources));
    registry
}

/// The OpenMetrics text of `registry`.
fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(err) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(%err, "cannot encode the metrics");
    }
    text
}

/// Serves `/metrics`, `/health` and `/ready` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: tokio::net::TcpListener, registry: Registry, health: Health) {
    let registry = Arc::new(registry);
    let ready = health.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    exposition(&registry),
                )
            }),
        )
        .route("/health", get(move || async move { health.liveness() }))
        .route("/ready", get(move || async move { ready.readiness() }));
    if let Err(err) = axum::serve(listener, app).await {
        tracing::error!(%err, "metrics server failed");
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn sources(counters: Arc<Counters>) -> Sources {
        Sources {
            counters,
            stats: Arc::default(),
            budget: None,
            locals: Origins::new(),
            remotes: Origins::new(),
            cluster: None,
        }
    }

    /// The whole HTTP/1.1 answer to `GET path`.
    async fn raw_get(addr: SocketAddr, path: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn ready_turns_503_when_the_drain_starts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Health::new(false);
        health.set_listening();
        let registry = registry(sources(Arc::default()));
        let server = tokio::spawn(serve(listener, registry, health.clone()));
        let ready = raw_get(addr, "/ready").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        health.start_drain();
        let draining = raw_get(addr, "/ready").await;
        assert!(draining.starts_with("HTTP/1.1 503"), "{draining}");
        assert!(draining.ends_with("draining\n"), "{draining}");
        let alive = raw_get(addr, "/health").await;
        assert!(alive.starts_with("HTTP/1.1 200"), "{alive}");
        server.abort();
    }

    #[test]
    fn every_series_has_help_and_type_and_the_prefix() {
        let counters = Arc::new(Counters::default());
        counters.accepted();
        counters.refused(Refused::Auth);
        let _open = counters.open(TransportKind::Quic);
        let text = exposition(&registry(sources(counters.clone())));
        assert!(
            text.contains("moq_relay_sessions_accepted_total 1\n"),
            "{text}"
        );
        assert!(text.contains("moq_relay_sessions_refused_total{reason=\"auth\"} 1\n"));
        assert!(text.contains("moq_relay_sessions_open{transport=\"quic\"} 1\n"));
        assert!(text.contains("# TYPE moq_relay_cache_bytes gauge\n"));
        assert!(text.ends_with("# EOF\n"));
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert!(line.starts_with("moq_relay_"), "{line}");
        }
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!((helps, types), (18, 18));
    }

    #[test]
    fn handshake_failures_are_classified() {
        assert_eq!(Refused::of(&Error::Unauthorized), Refused::Auth);
        assert_eq!(Refused::of(&Error::Version), Refused::Version);
        let timeout = Error::Transport(TransportError::Timeout("QUIC handshake"));
        assert_eq!(Refused::of(&timeout), Refused::HandshakeTimeout);
        let timeout = Error::Transport(TransportError::Timeout("setup"));
        assert_eq!(Refused::of(&timeout), Refused::HandshakeTimeout);
        assert_eq!(Refused::of(&Error::Cancel), Refused::Other);
    }
}
