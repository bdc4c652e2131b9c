//! The wire encoding: QUIC varints, the primitive types of spec §3, and the `Encode`/`Decode`
//! traits every message implements.
//!
//! Messages carry no type tag and no length (spec §3): a decoder reads from a [`bytes::Buf`] and
//! answers [`DecodeError::Short`] when the buffer ends before the message does, so the caller can
//! read more bytes and try again. Every count and length a peer controls is capped by a constant
//! in [`limits`].

mod decode;
mod encode;
pub mod limits;
mod varint;

pub use decode::{Decode, DecodeError};
pub use encode::Encode;
pub use varint::VarInt;
