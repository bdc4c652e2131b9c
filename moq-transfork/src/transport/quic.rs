//! The QUIC parameters of an endpoint (spec §2.3) and the settings an operator may change
//! from them: timeouts, flow-control windows, stream limits, the congestion controller, MTU
//! discovery, address-validation tokens and the UDP socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The QUIC idle timeout of spec §2.3.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The keep-alive interval of spec §2.3.
pub(super) const KEEP_ALIVE: Duration = Duration::from_secs(4);

/// What the peer may send on one stream before we read it: 4 MiB, some 330 Mb/s of media
/// at 100 ms RTT (quinn's default is 1.25 MB).
const STREAM_RECEIVE_WINDOW: u32 = 4 << 20;

/// What the peer may send on all streams together before we read it: 16 MiB, some 1.3 Gb/s
/// at 100 ms RTT (quinn's default is unlimited, so 256 streams could fill 256 windows).
const RECEIVE_WINDOW: u32 = 16 << 20;

/// What we buffer for the peer unacknowledged, on all streams together: 8 MiB, some 670 Mb/s
/// at 100 ms RTT (quinn's default is 10 MB). A peer that reads slowly holds at most this in
/// quinn's send buffer; the in-flight window of each subscription drops what does not fit.
const SEND_WINDOW: u64 = 8 << 20;

/// How many bidirectional streams (requests) a peer may open at once on a new connection;
/// its session doubles this as they fill up.
pub const INITIAL_BI_STREAMS: u32 = 8;

/// How many unidirectional streams (groups) a peer may open at once on a new connection; its
/// session doubles this as they fill up. A group's place reaches the sender again a round
/// trip after the group ends, so this also caps groups per round trip until it grows: 40
/// carries a group every 2 ms over a 60 ms path. With [`INITIAL_BI_STREAMS`] and the few
/// streams a session opens itself, quinn's stream table stays in its smallest size (64
/// slots) until the session grows the window.
pub const INITIAL_UNI_STREAMS: u32 = 40;

/// The most streams of each direction a peer may open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// A QUIC congestion controller. Spec §2.3 and moq-native use BBR (marked experimental in
/// quinn); the others are there to be measured against it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Congestion {
    /// BBR, the default.
    #[default]
    Bbr,
    /// CUBIC (RFC 9438), loss-based; quinn's own default.
    Cubic,
    /// NewReno (RFC 9002), loss-based.
    NewReno,
}

impl std::str::FromStr for Congestion {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "bbr" => Ok(Self::Bbr),
            "cubic" => Ok(Self::Cubic),
            "newreno" => Ok(Self::NewReno),
            _ => Err(format!("{name:?}: expected bbr, cubic or newreno")),
        }
    }
}

/// Transport settings an operator may change from spec §2.3's defaults, to measure them: the
/// congestion controller, MTU discovery and the UDP socket's buffers.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Tuning {
    /// The congestion controller (default BBR).
    pub congestion: Congestion,
    /// Probe the path for packets larger than [`initial_mtu`](Self::initial_mtu) (default
    /// off, as moq-native: every packet then carries at most 1200 bytes of UDP payload).
    pub mtu_discovery: bool,
    /// The UDP payload size connections start with, at least 1200 (default 1200). Larger
    /// saves packets from the start where the path is known to carry them (1452 for a 1500
    /// Ethernet MTU over IPv6); with discovery on, a path that drops them falls back to 1200.
    pub initial_mtu: Option<u16>,
    /// The UDP socket's send buffer (SO_SNDBUF) in bytes; default the OS's. Linux caps it at
    /// `net.core.wmem_max`.
    pub udp_send_buffer: Option<usize>,
    /// The UDP socket's receive buffer (SO_RCVBUF) in bytes; default the OS's. Linux caps it
    /// at `net.core.rmem_max` (208 KiB unless raised with sysctl).
    pub udp_recv_buffer: Option<usize>,
}

/// The QUIC parameters of spec §2.3: idle timeout 10 s, keep-alive 4 s, BBR, no MTU discovery
/// (unless `tuning` says otherwise); and flow-control windows sized for media, so a peer is
/// held back instead of buffered.
pub(super) fn transport_config(
    idle: Duration,
    keep_alive: Duration,
    tuning: &Tuning,
) -> quinn::TransportConfig {
    let mut config = quinn::TransportConfig::default();
    // Beyond the varint range (some 146 years) means no idle timeout.
    config.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    config.keep_alive_interval(Some(keep_alive));
    let congestion: Arc<dyn quinn::congestion::ControllerFactory + Send + Sync> =
        match tuning.congestion {
            Congestion::Bbr => Arc::new(quinn::congestion::BbrConfig::default()),
            Congestion::Cubic => Arc::new(quinn::congestion::CubicConfig::default()),
            Congestion::NewReno => Arc::new(quinn::congestion::NewRenoConfig::default()),
        };
    config.congestion_controller_factory(congestion);
    if let Some(mtu) = tuning.initial_mtu {
        config.initial_mtu(mtu.max(1200));
    }
    if !tuning.mtu_discovery {
        config.mtu_discovery_config(None);
    }
    // quinn keeps a table entry per stream the peer may open, so a connection starts with a
    // small window and its session widens it as streams are used, up to
    // MAX_CONCURRENT_STREAMS (quinn's default of 100 would cap each direction at ~100
    // subscriptions and in-flight groups, spec §2.3).
    config.max_concurrent_bidi_streams(INITIAL_BI_STREAMS.into());
    config.max_concurrent_uni_streams(INITIAL_UNI_STREAMS.into());
    config.stream_receive_window(quinn::VarInt::from_u32(STREAM_RECEIVE_WINDOW));
    config.receive_window(quinn::VarInt::from_u32(RECEIVE_WINDOW));
    config.send_window(SEND_WINDOW);
    config
}

/// The most memory the log of used address-validation tokens may take (quinn's default is
/// 10 MiB, reached after about a million reconnections).
const TOKEN_LOG_BYTES: usize = 256 << 10;

/// Address-validation tokens (NEW_TOKEN) let a returning client skip the Retry round trip;
/// the server logs each used token to refuse its reuse. The log is bounded here: once full
/// it turns into a Bloom filter, whose rare false positives only cost that client a Retry.
pub(super) fn validation_tokens() -> quinn::ValidationTokenConfig {
    let mut config = quinn::ValidationTokenConfig::default();
    config.log(Arc::new(quinn::BloomTokenLog::new_expected_items(
        TOKEN_LOG_BYTES,
        100_000,
    )));
    config
}

/// The UDP socket of an endpoint: an IPv6 one is made dual-stack where the OS allows (as
/// `quinn::Endpoint::client` does), and its buffers are sized as `tuning` asks.
pub(super) fn udp_socket(
    addr: SocketAddr,
    tuning: &Tuning,
) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        if let Err(err) = socket.set_only_v6(false) {
            tracing::debug!(%err, "unable to make the socket dual-stack");
        }
    }
    if let Some(bytes) = tuning.udp_send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    if let Some(bytes) = tuning.udp_recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    if tuning.udp_send_buffer.is_some() || tuning.udp_recv_buffer.is_some() {
        // Linux doubles what it grants (for its bookkeeping) and caps it at wmem_max/rmem_max.
        tracing::info!(
            send = socket.send_buffer_size()?,
            recv = socket.recv_buffer_size()?,
            "UDP socket buffers"
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
