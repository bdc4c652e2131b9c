//! Command-line flags, compatible with moq-relay 0.6.15 (spec §10.1).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use moq_transfork::transport::{ClientTls, Congestion, Tuning};
use moq_transfork::{CacheBudget, CacheConfig, SessionOptions};

use crate::sessions::Limits;

/// A caching, deduplicating MoqTransfork relay over WebTransport and raw QUIC on one UDP port.
#[derive(Parser, Debug)]
#[command(version)]
pub(crate) struct Args {
    /// The UDP address to listen on for QUIC (WebTransport and raw QUIC). The HTTP API is
    /// served on TCP at the same address: HTTPS with --tls-cert, plain HTTP with a generated
    /// certificate (see --no-http).
    #[arg(long, default_value = "[::]:4443")]
    #[arg(env = "MOQ_RELAY_BIND")]
    pub(crate) bind: SocketAddr,

    /// A PEM certificate chain to serve; repeat for several, each with its --tls-key. The first
    /// one valid for the client's SNI is used, otherwise the last. Without any, a self-signed
    /// development certificate for localhost is generated.
    #[arg(long = "tls-cert", value_name = "PEM")]
    #[arg(env = "MOQ_RELAY_TLS_CERT")]
    pub(crate) tls_cert: Vec<PathBuf>,

    /// The PEM private key of the --tls-cert at the same position.
    #[arg(long = "tls-key", value_name = "PEM")]
    #[arg(env = "MOQ_RELAY_TLS_KEY")]
    pub(crate) tls_key: Vec<PathBuf>,

    /// A PEM file of roots to trust on outgoing (cluster) connections, instead of the system's;
    /// repeatable.
    #[arg(long = "tls-root", value_name = "PEM")]
    #[arg(env = "MOQ_RELAY_TLS_ROOT")]
    pub(crate) tls_root: Vec<PathBuf>,

    /// Do not verify certificates on outgoing (cluster) connections. Development only.
    #[arg(long)]
    #[arg(env = "MOQ_RELAY_TLS_DISABLE_VERIFY")]
    pub(crate) tls_disable_verify: bool,

    /// HOST:PORT of the cluster's root relay, used for discovery. Without it, this relay is
    /// a root.
    #[arg(long, value_name = "HOST[:PORT]")]
    #[arg(env = "MOQ_RELAY_CLUSTER_ROOT")]
    pub(crate) cluster_root: Option<String>,

    /// HOST:PORT under which peers reach this relay, advertised to the cluster. Without it,
    /// the relay is a read-only member.
    #[arg(long, value_name = "HOST[:PORT]")]
    #[arg(env = "MOQ_RELAY_CLUSTER_NODE")]
    pub(crate) cluster_node: Option<String>,

    /// Serve GET /fingerprint on TCP at the --bind address.
    #[arg(long)]
    #[arg(env = "MOQ_RELAY_DEV")]
    pub(crate) dev: bool,

    /// Serve the browser page at / on TCP at the --bind address (always on with --dev or a
    /// generated certificate).
    #[arg(long)]
    #[arg(env = "MOQ_RELAY_WEB")]
    pub(crate) web: bool,

    /// How long an upstream subscription outlives its last subscriber, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    #[arg(env = "MOQ_RELAY_LINGER_MS")]
    pub(crate) linger_ms: u64,

    /// The most frame bytes all track caches together may hold. Each track keeps its latest
    /// group plus up to --cache-max-groups recent ones; above this relay-wide limit, tracks
    /// keep only their latest group.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    #[arg(env = "MOQ_RELAY_CACHE_MAX_BYTES")]
    pub(crate) cache_max_bytes: u64,

    /// How many groups each track's cache keeps, its latest included (for late joiners,
    /// FETCH and slow subscribers).
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    #[arg(env = "MOQ_RELAY_CACHE_MAX_GROUPS")]
    pub(crate) cache_max_groups: u64,

    /// The most paths one client may hold announced at once. The announce stream that would
    /// go beyond it is reset with BoundsExceeded (11), which withdraws the client's paths.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    #[arg(env = "MOQ_RELAY_ANNOUNCE_MAX_PER_SESSION")]
    pub(crate) announce_max_per_session: usize,

    /// The most announcements the relay holds from its clients together (a path announced by
    /// two clients counts twice), and likewise from the cluster. The client whose
    /// announcement would go beyond it has its announce stream reset with BoundsExceeded (11).
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    #[arg(env = "MOQ_RELAY_ANNOUNCE_MAX_TOTAL")]
    pub(crate) announce_max_total: usize,

    /// The largest frame a peer may send; a larger FRAME header stops its group stream with
    /// code 11 (bounds exceeded) before any payload is read.
    #[arg(long, default_value_t = moq_transfork::DEFAULT_MAX_FRAME_SIZE, value_name = "BYTES")]
    #[arg(env = "MOQ_RELAY_MAX_FRAME_SIZE")]
    pub(crate) max_frame_size: u64,

    /// The most a peer's group may hold (declared frame sizes); past it, the group stream is
    /// stopped with code 11.
    #[arg(long, default_value_t = moq_transfork::DEFAULT_MAX_GROUP_SIZE, value_name = "BYTES")]
    #[arg(env = "MOQ_RELAY_MAX_GROUP_SIZE")]
    pub(crate) max_group_size: u64,

    /// The most bytes one connection's unfinished groups may hold together, counted as they
    /// arrive; the group stream that would exceed it is stopped with code 11.
    #[arg(long, default_value_t = moq_transfork::DEFAULT_MAX_RECV_BYTES, value_name = "BYTES")]
    #[arg(env = "MOQ_RELAY_MAX_RECV_BYTES")]
    pub(crate) max_recv_bytes: u64,

    /// The most bytes of one subscription in flight to a subscriber (sent, not acknowledged);
    /// beyond it, its oldest groups are dropped (GROUP_DROP) for the newest (a lone group is
    /// kept whatever its size).
    #[arg(long, default_value_t = moq_transfork::DEFAULT_MAX_INFLIGHT_BYTES, value_name = "BYTES")]
    #[arg(env = "MOQ_RELAY_MAX_INFLIGHT_BYTES")]
    pub(crate) max_inflight_bytes: u64,

    /// How long a subscriber's group may still be sent once a newer group of its (live,
    /// descending) subscription arrived; then it is dropped (GROUP_DROP), so a subscriber on
    /// a slow path stays about this far behind the newest group at most.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = crate::config::parse_duration, env = "MOQ_RELAY_MAX_INFLIGHT_LAG")]
    pub(crate) max_inflight_lag: Duration,

    /// The most connections served at once (handshaking or live); more are refused with QUIC
    /// CONNECTION_REFUSED. An idle session costs under 48 KiB.
    #[arg(long, default_value_t = 10_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    #[arg(env = "MOQ_RELAY_MAX_SESSIONS")]
    pub(crate) max_sessions: u64,

    /// The most connections from one client address (an IPv4 address, or an IPv6 /64); more
    /// are refused with QUIC CONNECTION_REFUSED.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    #[arg(env = "MOQ_RELAY_MAX_SESSIONS_PER_IP")]
    pub(crate) max_sessions_per_ip: u64,

    /// With this many handshakes in progress, connection attempts from addresses not yet
    /// validated get a QUIC Retry (address validation) first; 0 always asks.
    #[arg(long, default_value_t = 64, value_name = "N")]
    #[arg(env = "MOQ_RELAY_RETRY_HANDSHAKES")]
    pub(crate) retry_handshakes: u64,

    /// A JWK file (one key or a JWK set) whose keys verify client tokens; repeatable. With
    /// any, every client needs a valid token, or a public prefix (docs/auth.md). Without, the
    /// relay is open to anyone.
    #[arg(long = "auth-key", value_name = "PATH")]
    #[arg(env = "MOQ_RELAY_AUTH_KEY")]
    pub(crate) auth_key: Vec<PathBuf>,

    /// A path prefix (parts separated by `/`) that clients without a token may publish and
    /// subscribe under; repeatable. Only meaningful with --auth-key.
    #[arg(long = "auth-public", value_name = "PREFIX")]
    #[arg(env = "MOQ_RELAY_AUTH_PUBLIC")]
    pub(crate) auth_public: Vec<String>,

    /// A file holding a JWT with the cluster role, presented on the cluster links this relay
    /// dials. Members with --auth-key refuse cluster links without such a token.
    #[arg(long = "cluster-token", value_name = "PATH")]
    #[arg(env = "MOQ_RELAY_CLUSTER_TOKEN")]
    pub(crate) cluster_token: Option<PathBuf>,

    /// How long a drain (on SIGTERM or SIGINT) keeps serving the sessions before it closes
    /// them: `10s`, `500ms`, `2m`, or seconds. New connections are refused at once; the
    /// drain ends early when no session is left. A second signal ends it.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = crate::config::parse_duration, env = "MOQ_RELAY_DRAIN_TIMEOUT")]
    pub(crate) drain_timeout: Duration,

    /// A TOML file of settings: each key a flag's name with `_` for `-` (`tls_cert`,
    /// `drain_timeout`). Flags win over the environment, which wins over the file.
    #[arg(long, value_name = "PATH", env = "MOQ_RELAY_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// The format of the logs on stderr: `text` for people, `json` (one object per line) for
    /// log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT", env = "MOQ_RELAY_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,

    /// The QUIC congestion controller: cubic, bbr (spec §2.3, as moq-relay 0.6.15; marked
    /// experimental in quinn) or newreno. Cubic delivered the most at high rates with the
    /// least CPU per byte (docs/performance.md).
    #[arg(
        long,
        default_value = "cubic",
        value_name = "NAME",
        env = "MOQ_RELAY_CONGESTION"
    )]
    pub(crate) congestion: Congestion,

    /// Probe paths for packets larger than --initial-mtu, up to 1452 bytes of UDP payload
    /// (docs/performance.md: fewer packets per byte). `--mtu-discovery=false` keeps every
    /// packet at --initial-mtu, as 0.6.15 does.
    #[arg(
        long,
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL",
        env = "MOQ_RELAY_MTU_DISCOVERY"
    )]
    pub(crate) mtu_discovery: bool,

    /// The UDP payload size connections start with.
    #[arg(long, default_value_t = 1200, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(1200..), env = "MOQ_RELAY_INITIAL_MTU")]
    pub(crate) initial_mtu: u16,

    /// The UDP socket's send buffer (SO_SNDBUF); default the OS's. Linux caps it at
    /// net.core.wmem_max.
    #[arg(long, value_name = "BYTES", env = "MOQ_RELAY_UDP_SEND_BUFFER")]
    pub(crate) udp_send_buffer: Option<usize>,

    /// The UDP socket's receive buffer (SO_RCVBUF); default the OS's. Linux caps it at
    /// net.core.rmem_max (208 KiB unless raised with sysctl).
    #[arg(long, value_name = "BYTES", env = "MOQ_RELAY_UDP_RECV_BUFFER")]
    pub(crate) udp_recv_buffer: Option<usize>,

    /// Worker threads of the relay's runtime; default one per core the relay may use (its
    /// CPU affinity and cgroup quota). Fewer workers wake each other less: on 2 cores one
    /// worker cost 5-35 % less CPU per delivered GB (docs/performance.md), at the price of
    /// using one core.
    #[arg(long, value_name = "N", env = "MOQ_RELAY_WORKERS")]
    pub(crate) workers: Option<NonZeroUsize>,

    /// More logging: -v debug, -vv trace. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    #[arg(env = "MOQ_RELAY_VERBOSE")]
    pub(crate) verbose: u8,

    /// Less logging: -q errors only, -qq nothing. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    #[arg(env = "MOQ_RELAY_QUIET")]
    pub(crate) quiet: u8,

    /// The metrics listener and the public HTTP listener.
    #[command(flatten)]
    pub(crate) obs: crate::metrics::ObsArgs,
}

/// How logs are written (`--log-format`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the span fields (session id, remote, ...).
    Json,
}

impl Args {
    /// Logs to stderr at the level the flags ask for, unless RUST_LOG says otherwise.
    pub(crate) fn init_logging(&self) {
        let level = match (self.verbose, self.quiet) {
            (0, 0) => "info",
            (_, 1) => "error",
            (_, q) if q >= 2 => "off",
            (1, _) => "debug",
            _ => "trace",
        };
        // quinn is chatty below info; web-transport-quinn logs CONNECT URLs (and so tokens)
        // at debug.
        let default = format!("{level},quinn=info,quinn_proto=info,web_transport_quinn=info");
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        let logs = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Text => logs
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init(),
            LogFormat::Json => logs.json().with_ansi(false).init(),
        }
    }

    /// Rejects flag combinations that cannot work.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.tls_cert.len() != self.tls_key.len() {
            anyhow::bail!(
                "{} --tls-cert but {} --tls-key: give one key per certificate",
                self.tls_cert.len(),
                self.tls_key.len()
            );
        }
        Ok(())
    }

    /// The JWT of --cluster-token, if given.
    pub(crate) fn cluster_token(&self) -> anyhow::Result<Option<String>> {
        self.cluster_token
            .as_ref()
            .map(|path| {
                std::fs::read_to_string(path)
                    .map(|token| token.trim().to_string())
                    .with_context(|| format!("reading --cluster-token {}", path.display()))
            })
            .transpose()
    }

    /// TLS for outgoing connections.
    pub(crate) fn client_tls(&self) -> anyhow::Result<ClientTls> {
        Ok(if self.tls_disable_verify {
            ClientTls::disable_verify()
        } else if !self.tls_root.is_empty() {
            ClientTls::with_roots(&self.tls_root).context("loading --tls-root")?
        } else {
            ClientTls::system_roots().context("loading the system's roots")?
        })
    }

    /// The transport settings of --congestion, --mtu-discovery, --initial-mtu and the UDP
    /// buffers.
    pub(crate) fn tuning(&self) -> Tuning {
        let mut tuning = Tuning::default();
        tuning.congestion = self.congestion;
        tuning.mtu_discovery = self.mtu_discovery;
        tuning.initial_mtu = Some(self.initial_mtu);
        tuning.udp_send_buffer = self.udp_send_buffer;
        tuning.udp_recv_buffer = self.udp_recv_buffer;
        tuning
    }

    /// The runtime the relay runs on: multi-threaded, with --workers threads.
    pub(crate) fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(workers) = self.workers {
            builder.worker_threads(workers.get());
        }
        builder.enable_all().build()
    }

    /// The connection limits.
    pub(crate) fn limits(&self) -> Limits {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Limits {
            max_sessions: size(self.max_sessions),
            max_per_address: size(self.max_sessions_per_ip),
            retry_handshakes: size(self.retry_handshakes),
        }
    }

    /// The options of every session (client sessions and cluster links): linger, cache and
    /// the limits on what a peer can make the relay hold.
    pub(crate) fn session(&self) -> SessionOptions {
        SessionOptions {
            linger: Duration::from_millis(self.linger_ms),
            cache: self.cache(),
            max_frame_size: self.max_frame_size,
            max_group_size: self.max_group_size,
            max_recv_bytes: self.max_recv_bytes,
            max_inflight_bytes: self.max_inflight_bytes,
            max_inflight_lag: self.max_inflight_lag,
            ..SessionOptions::default()
        }
    }

    /// The cache of every track the relay subscribes to, bounded per track and, through one
    /// budget created here and shared by every session's options, relay-wide.
    fn cache(&self) -> CacheConfig {
        CacheConfig {
            max_groups: usize::try_from(self.cache_max_groups).unwrap_or(usize::MAX),
            max_bytes: CacheConfig::default().max_bytes.min(self.cache_max_bytes),
            budget: Some(Arc::new(CacheBudget::new(self.cache_max_bytes))),
        }
    }
}
