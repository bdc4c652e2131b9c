//! QUIC endpoints, WebTransport and TLS: the edge where sockets live.
//!
//! One [`Endpoint`] binds one UDP socket, accepts both raw QUIC (`moqf-02`) and WebTransport
//! (`h3`) connections, and dials out on the same socket (spec §2, §11). Both transports end up
//! as a [`Connection`] with [`SendStream`]s and [`RecvStream`]s whose error codes are mapped
//! the way 0.8.0 peers expect (spec §2.4). For tests without sockets, `memory::pair` (cargo
//! feature `test-util`) gives two connected [`Connection`]s in one process.

mod certs;
mod connection;
mod endpoint;
#[cfg(feature = "test-util")]
pub mod memory;
mod quic;
mod stream;
mod tls;
mod verify;

pub use certs::CertResolver;
pub use connection::{Connection, TransportKind};
pub use endpoint::{BindError, Endpoint, EndpointConfig, Incoming, ALPN_QUIC, ALPN_WEBTRANSPORT};
pub use quic::{
    Congestion, Tuning, INITIAL_BI_STREAMS, INITIAL_UNI_STREAMS, MAX_CONCURRENT_STREAMS,
};
pub use stream::{RecvStream, SendStream};
pub use tls::{ClientTls, ServerTls, TlsError};
