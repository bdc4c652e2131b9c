//! Every message of the wire format (spec §6), one module per family.
//!
//! Messages carry no type tag and no length prefix (spec §3): what comes next on a stream is
//! fixed by the stream type ([`BiStream`], [`UniStream`]) and by how far along the stream is.
//! The session decides which message to decode; each one implements
//! [`Encode`](crate::coding::Encode) and [`Decode`](crate::coding::Decode).
//!
//! | Stream | Opener sends | Peer replies |
//! |---|---|---|
//! | [`BiStream::Session`] | [`ClientSetup`] | [`ServerSetup`] |
//! | [`BiStream::Announce`] | [`AnnouncePlease`] | [`Announce`]… |
//! | [`BiStream::Subscribe`] | [`Subscribe`], [`SubscribeUpdate`]… | [`Info`], [`GroupDrop`]… |
//! | [`BiStream::Fetch`] | [`Fetch`] | ([`FrameHeader`] + payload)… |
//! | [`BiStream::Info`] | [`InfoRequest`] | [`Info`] |
//! | [`UniStream::Group`] | [`GroupHeader`], ([`FrameHeader`] + payload)… | – |

mod announce;
mod fetch;
mod group;
mod info;
mod setup;
mod stream;
mod subscribe;

pub use announce::{Announce, AnnouncePlease};
pub use fetch::Fetch;
pub use group::{FrameHeader, GroupHeader};
pub use info::{Info, InfoRequest};
pub use setup::{ClientSetup, Extensions, ServerSetup, Version, Versions, TOKEN_EXTENSION};
pub use stream::{BiStream, UniStream};
pub use subscribe::{GroupDrop, Subscribe, SubscribeUpdate};

#[cfg(test)]
mod tests;
