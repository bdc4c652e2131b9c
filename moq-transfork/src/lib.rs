//! MoqTransfork (Media over QUIC Transfork): publish and subscribe to live tracks over
//! WebTransport (HTTP/3) and raw QUIC, byte-compatible with the released moq-transfork 0.8.0.
//!
//! The crate is layered like the protocol:
//! - [`coding`]: QUIC varints and the `Encode`/`Decode` traits;
//! - [`message`]: every message of the wire format, one module per family;
//! - [`model`]: tracks, groups, frames and announcements, as producer/consumer pairs;
//! - the session ([`Session`]): the state machines that move the model over streams;
//! - [`relay`]: relay policy, a registry of what sessions announce ([`relay::Origins`]) that
//!   routes subscriptions to them;
//! - [`transport`]: QUIC endpoints, WebTransport and TLS, the only code that touches sockets.
//!
//! # Quick start
//!
//! Connect to a relay, publish a track, and subscribe to one: here the track just published,
//! which the relay routes back. The example runs against a small relay on loopback (hidden).
//!
//! ```
//! use bytes::Bytes;
//! use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
//! use moq_transfork::{Announced, Path, Session, Track};
//!
//! async fn quick_start(url: url::Url, tls: ClientTls) -> Result<(), moq_transfork::Error> {
//!     // One UDP socket to dial from; `tls` says which servers to trust
//!     // (`ClientTls::system_roots()` for a relay with a public certificate).
//!     let endpoint = Endpoint::bind(EndpointConfig {
//!         bind: "127.0.0.1:0".parse().expect("an address"),
//!         server: None,
//!         client: tls,
//!     })?;
//!     // `https://` runs WebTransport, `moqf://` raw QUIC; then the SETUP handshake.
//!     let session = Session::connect(endpoint.connect(&url).await?).await?;
//!
//!     // Publish: the relay announces the path to everyone and serves its subscribers.
//!     let path = Path::from_iter(["demo", "clock"]);
//!     let (producer, consumer) = Track::new(path.clone()).produce();
//!     session.publish(consumer)?;
//!
//!     // Wait until the relay announces it (to us too), then subscribe to it by path.
//!     let mut announced = session.announced(Path::from_iter(["demo"]));
//!     while let Some(Announced::Active(active)) = announced.next().await {
//!         if active == path {
//!             break;
//!         }
//!     }
//!     let mut track = session.subscribe(Track::new(path));
//!
//!     // A group of frames: a clock writes one group per minute, a frame per second.
//!     let mut group = producer.append_group()?;
//!     group.write_frame(Bytes::from_static(b"12:00:00"));
//!
//!     let mut received = track.next_group().await?.expect("a group");
//!     let frame = received.read_frame().await?.expect("a frame");
//!     assert_eq!(frame, "12:00:00");
//!     Ok(())
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! # use moq_transfork::relay::Origins;
//! # use moq_transfork::transport::ServerTls;
//! # use moq_transfork::SessionOptions;
//! # let cert = ServerTls::self_signed(&["localhost".to_string()])?;
//! # let pin = cert.fingerprints().iter().map(hex::decode).collect::<Result<_, _>>()?;
//! # let relay = Endpoint::bind(EndpointConfig {
//! #     bind: "127.0.0.1:0".parse()?,
//! #     server: Some(cert),
//! #     client: ClientTls::disable_verify(),
//! # })?;
//! # let url = format!("moqf://localhost:{}", relay.local_addr()?.port()).parse()?;
//! # let origins = Origins::new();
//! # tokio::spawn(async move {
//! #     while let Some(incoming) = relay.accept().await {
//! #         let origins = origins.clone();
//! #         tokio::spawn(async move {
//! #             let options = SessionOptions {
//! #                 announce: vec![origins.announced()],
//! #                 router: Some(Arc::new(origins.clone())),
//! #                 ..Default::default()
//! #             };
//! #             let session = Session::accept_with(incoming.accept().await?, options).await?;
//! #             origins.serve(&session, Path::new()).await;
//! #             Ok::<_, moq_transfork::Error>(())
//! #         });
//! #     }
//! # });
//! # let run = quick_start(url, ClientTls::with_fingerprints(pin));
//! # tokio::time::timeout(std::time::Duration::from_secs(10), run).await??;
//! # Ok(())
//! # }
//! ```
//!
//! [`relay::Origins`] is the registry such a relay is built on. Tests of code built on
//! sessions run over the in-memory transport instead of sockets (`transport::memory`, cargo
//! feature `test-util`). `docs/library.md` in the repository says how to embed the crate:
//! sessions, the model, errors, limits, testing and semver.
//!
//! # Cargo features
//!
//! - `dev-cert` (off): `ServerTls::self_signed`, a generated development certificate that
//!   browsers accept pinned by hash; pulls in `rcgen`.
//! - `test-util` (off): `transport::memory`, two connected sessions in one process with no
//!   sockets, TLS or clock, for tests.
//! - `fuzzing` (off): the stream reader for the fuzz targets; not a stable API.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

pub mod coding;
mod error;
pub mod message;
pub mod model;
pub mod relay;
mod session;
mod sync;
pub mod transport;

pub use coding::{Decode, DecodeError, Encode, VarInt};
pub use error::{from_wire, to_wire, Cause, Error, TransportError};
pub use model::{
    Announced, AnnouncedConsumer, AnnouncedProducer, CacheBudget, CacheConfig, FrameConsumer,
    FrameProducer, GroupConsumer, GroupOrder, GroupProducer, Path, Track, TrackConsumer,
    TrackHandle, TrackProducer,
};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use session::FuzzReader;
pub use session::{
    AnnounceFilter, FetchedGroup, Router, Session, SessionOptions, DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_GROUP_SIZE, DEFAULT_MAX_INFLIGHT_BYTES, DEFAULT_MAX_INFLIGHT_LAG,
    DEFAULT_MAX_RECV_BYTES,
};
pub use session::{SessionStats, StatsSnapshot};
