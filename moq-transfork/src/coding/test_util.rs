//! Test helpers shared by the codec and message tests: golden-vector checks and proptest
//! strategies that stay within [`limits`](super::limits).

use std::fmt::Debug;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use proptest::prelude::*;

use super::{Decode, DecodeError, Encode, VarInt};
use crate::{GroupOrder, Path};

/// Decodes one `T` from hex; the whole input must be consumed.
pub(crate) fn decode_hex<T: Decode>(hex: &str) -> Result<T, DecodeError> {
    let bytes = hex::decode(hex.replace(' ', "")).expect("test hex is valid");
    let mut slice = bytes.as_slice();
    let value = T::decode(&mut slice)?;
    assert!(slice.is_empty(), "{} trailing bytes", slice.len());
    Ok(value)
}

/// Encodes `value` into a fresh vector.
pub(crate) fn encode<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    value.encode(&mut buf);
    buf
}

/// Checks a spec §14 golden vector: `hex` decodes to `expected` (from a slice and from a
/// [`Bytes`]), consuming everything; `expected` encodes back to exactly `hex`; and every strict
/// prefix of `hex` decodes to [`DecodeError::Short`], asking for no more bytes than the rest of
/// `hex` holds.
#[track_caller]
pub(crate) fn assert_golden<T: Encode + Decode + PartialEq + Debug>(hex: &str, expected: &T) {
    let bytes = hex::decode(hex.replace(' ', "")).expect("test hex is valid");
    assert_eq!(
        decode_hex::<T>(hex).as_ref(),
        Ok(expected),
        "decoding {hex}"
    );

    let mut shared = Bytes::from(bytes.clone());
    assert_eq!(T::decode(&mut shared).as_ref(), Ok(expected));
    assert!(!shared.has_remaining());

    assert_eq!(
        hex::encode(encode(expected)),
        hex::encode(&bytes),
        "encoding"
    );

    for end in 0..bytes.len() {
        let mut prefix = &bytes[..end];
        let result = T::decode(&mut prefix);
        assert!(
            matches!(result, Err(DecodeError::Short(n)) if n >= 1 && end + n <= bytes.len()),
            "prefix of {end} bytes of {hex}: {result:?}"
        );
    }
}

/// Encodes then decodes `value`, checking that the decoder consumes exactly what was written.
pub(crate) fn round_trip<T: Encode + Decode>(value: &T) -> Result<T, DecodeError> {
    let bytes = encode(value);
    let mut slice = bytes.as_slice();
    let decoded = T::decode(&mut slice)?;
    assert!(slice.is_empty(), "{} trailing bytes", slice.len());
    Ok(decoded)
}

/// Two values back to back, as on a stream (a stream type followed by its first message).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seq<A, B>(pub(crate) A, pub(crate) B);

impl<A: Encode, B: Encode> Encode for Seq<A, B> {
    fn encode<W: BufMut>(&self, buf: &mut W) {
        self.0.encode(buf);
        self.1.encode(buf);
    }
}

impl<A: Decode, B: Decode> Decode for Seq<A, B> {
    fn decode<R: Buf>(buf: &mut R) -> Result<Self, DecodeError> {
        Ok(Self(A::decode(buf)?, B::decode(buf)?))
    }
}

/// Any varint value.
pub(crate) fn any_varint() -> impl Strategy<Value = u64> {
    0..=VarInt::MAX.into_inner()
}

/// Any optional group number whose `n + 1` encoding fits a varint.
pub(crate) fn any_optional_seq() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(0..VarInt::MAX.into_inner())
}

/// Any duration of whole milliseconds in the varint range.
pub(crate) fn any_duration() -> impl Strategy<Value = Duration> {
    any_varint().prop_map(Duration::from_millis)
}

/// Either group order.
pub(crate) fn any_order() -> impl Strategy<Value = GroupOrder> {
    prop_oneof![Just(GroupOrder::Ascending), Just(GroupOrder::Descending)]
}

/// Any path within the limits: up to 8 parts of up to 16 characters (at most 64 bytes each).
pub(crate) fn any_path() -> impl Strategy<Value = Path> {
    proptest::collection::vec(".{0,16}", 0..=8).prop_map(Path::from)
}
