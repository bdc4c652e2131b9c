//! MoqTransfork (Media over QUIC Transfork): publish and subscribe to live tracks over
//! WebTransport (HTTP/3) and raw QUIC, byte-compatible with the released moq-transfork 0.8.0.
//!
//! The crate is layered like the protocol:
//! - [`coding`]: QUIC varints and the `Encode`/`Decode` traits;
//! - [`message`]: every message of the wire format, one module per family;
//! - [`model`]: tracks, groups, frames and announcements, as producer/consumer pairs;
//! - the session ([`Session`]): the state machines that move the model over streams;
//! - [`Origins`]: a registry of what sessions announce, to route subscriptions (a relay);
//! - [`transport`]: QUIC endpoints, WebTransport and TLS, the only code that touches sockets.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

pub mod coding;
mod error;
pub mod message;
pub mod model;
mod origins;
mod session;
pub mod transport;

pub use coding::{Decode, DecodeError, Encode, VarInt};
pub use error::{from_wire, to_wire, Error};
pub use model::{
    Announced, AnnouncedConsumer, AnnouncedProducer, CacheBudget, CacheConfig, FrameConsumer,
    FrameProducer, GroupConsumer, GroupOrder, GroupProducer, Path, Track, TrackConsumer,
    TrackHandle, TrackProducer,
};
pub use origins::Origins;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use session::FuzzReader;
pub use session::{
    AnnounceFilter, FetchedGroup, Router, Session, SessionOptions, DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_GROUP_SIZE, DEFAULT_MAX_INFLIGHT_BYTES, DEFAULT_MAX_RECV_BYTES,
};
pub use session::{SessionStats, StatsSnapshot};
