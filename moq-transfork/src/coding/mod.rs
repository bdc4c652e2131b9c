//! The wire encoding: QUIC varints, the primitive types of spec §3, and the `Encode`/`Decode`
//! traits every message implements.
//!
//! Messages carry no type tag and no length (spec §3): a decoder reads from a [`bytes::Buf`] and
//! answers [`DecodeError::Short`] when the buffer ends before the message does, so the caller can
//! read more bytes and try again. Every count and length a peer controls is capped by a constant
//! in [`limits`], checked before anything is allocated.
//!
//! Primitive encodings and where they live:
//! - varints: [`VarInt`], and the `u64`, `u32` and `usize` impls ([`varint_len`] gives the size);
//! - strings and byte strings (`String`, `str`, [`bytes::Bytes`], `[u8]`): a varint length, then
//!   the bytes;
//! - [`Path`](crate::Path): a varint part count, then each part as a string;
//! - [`std::time::Duration`]: whole milliseconds as a varint;
//! - the `i8` track priority: one raw byte, priority + 128, through [`Priority`];
//! - optional group numbers: `0` = none, else `n + 1`, through [`OptionalSeq`];
//! - [`GroupOrder`](crate::GroupOrder): a varint, 0 ascending, 1 descending.

mod decode;
mod encode;
pub mod limits;
mod order;
mod path;
mod primitive;
mod priority;
#[cfg(test)]
pub(crate) mod test_util;
mod varint;

pub use decode::{Decode, DecodeError};
pub use encode::Encode;
pub(crate) use primitive::decode_bytes;
pub use priority::{OptionalSeq, Priority};
pub use varint::{varint_len, VarInt, VarIntBoundsExceeded};
