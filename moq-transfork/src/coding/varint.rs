//! QUIC variable-length integers (RFC 9000 §16, spec §3).
//!
//! A varint stores a 62-bit value in 1, 2, 4 or 8 bytes, big-endian, with the length in the two
//! top bits of the first byte (`00` = 1 byte, `01` = 2, `10` = 4, `11` = 8). We always encode the
//! shortest form and accept any form on decode (`40 01` is 1).

use std::fmt;

use bytes::{Buf, BufMut};

use super::{Decode, DecodeError, Encode};

/// An integer in the varint range `0..=2^62 - 1`.
///
/// ```
/// use moq_transfork::coding::{Encode, VarInt};
/// let v = VarInt::from_u32(16384);
/// let mut buf = Vec::new();
/// v.encode(&mut buf);
/// assert_eq!(buf, [0x80, 0x00, 0x40, 0x00]);
/// assert!(VarInt::from_u64(1 << 62).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VarInt(u64);

impl VarInt {
    /// The largest varint, 2^62 − 1.
    pub const MAX: Self = Self((1 << 62) - 1);

    /// Zero.
    pub const ZERO: Self = Self(0);

    /// Wraps a `u32`; every `u32` fits.
    pub const fn from_u32(value: u32) -> Self {
        Self(value as u64)
    }

    /// Wraps a `u64` that fits in 62 bits.
    ///
    /// # Errors
    /// [`VarIntBoundsExceeded`] when `value > 2^62 − 1`.
    pub const fn from_u64(value: u64) -> Result<Self, VarIntBoundsExceeded> {
        if value <= Self::MAX.0 {
            Ok(Self(value))
        } else {
            Err(VarIntBoundsExceeded)
        }
    }

    /// The value as a `u64`.
    pub const fn into_inner(self) -> u64 {
        self.0
    }

    /// How many bytes the shortest encoding of `self` takes (1, 2, 4 or 8).
    pub const fn size(self) -> usize {
        varint_len(self.0)
    }
}

/// How many bytes the shortest varint encoding of `value` takes: 1, 2, 4 or 8.
///
/// Values above [`VarInt::MAX`] have no encoding; for them this returns 8, the size of the
/// saturated value that [`Encode`] writes.
pub const fn varint_len(value: u64) -> usize {
    if value < 1 << 6 {
        1
    } else if value < 1 << 14 {
        2
    } else if value < 1 << 30 {
        4
    } else {
        8
    }
}

/// A value does not fit in a varint (it is above 2^62 − 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value exceeds the varint range")]
pub struct VarIntBoundsExceeded;

impl From<VarIntBoundsExceeded> for DecodeError {
    fn from(_: VarIntBoundsExceeded) -> Self {
        Self::BoundsExceeded("varint")
    }
}

impl From<u8> for VarInt {
    fn from(value: u8) -> Self {
        Self(value.into())
    }
}

impl From<u16> for VarInt {
    fn from(value: u16) -> Self {
        Self(value.into())
    }
}

impl From<u32> for VarInt {
    fn from(value: u32) -> Self {
        Self::from_u32(value)
    }
}

impl TryFrom<u64> for VarInt {
    type Error = VarIntBoundsExceeded;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::from_u64(value)
    }
}

impl From<VarInt> for u64 {
    fn from(value: VarInt) -> Self {
        value.0
    }
}

impl fmt::Display for VarInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Encode for VarInt {
    /// Writes the shortest form.
    fn encode<B: BufMut>(&self, buf: &mut B) {
        let v = self.0;
        // The casts cannot truncate: `varint_len` chose a width that holds `v`.
        match varint_len(v) {
            1 => buf.put_u8(v as u8),
            2 => buf.put_u16(0x4000 | v as u16),
            4 => buf.put_u32(0x8000_0000 | v as u32),
            _ => buf.put_u64(0xc000_0000_0000_0000 | v),
        }
    }
}

impl Decode for VarInt {
    /// Reads any form, minimal or not.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        if !buf.has_remaining() {
            return Err(DecodeError::Short(1));
        }
        let first = buf.get_u8();
        let rest = (1usize << (first >> 6)) - 1;
        if buf.remaining() < rest {
            return Err(DecodeError::Short(rest - buf.remaining()));
        }
        let mut value = u64::from(first & 0x3f);
        for _ in 0..rest {
            value = (value << 8) | u64::from(buf.get_u8());
        }
        Ok(Self(value))
    }
}

/// Plain `u64` fields (ids, sequences, counts) are varints.
///
/// A value above [`VarInt::MAX`] is a bug in the caller: debug builds panic, release builds
/// write [`VarInt::MAX`]. Values decoded from the wire always fit.
impl Encode for u64 {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        debug_assert!(*self <= VarInt::MAX.0, "{self} exceeds the varint range");
        VarInt((*self).min(VarInt::MAX.0)).encode(buf);
    }
}

impl Decode for u64 {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        VarInt::decode(buf).map(VarInt::into_inner)
    }
}

/// `u32` fields (error codes) are varints that must fit in 32 bits.
impl Encode for u32 {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        VarInt::from_u32(*self).encode(buf);
    }
}

impl Decode for u32 {
    /// # Errors
    /// [`DecodeError::BoundsExceeded`] when the varint is above `u32::MAX`.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let value = VarInt::decode(buf)?.into_inner();
        Self::try_from(value).map_err(|_| DecodeError::BoundsExceeded("u32"))
    }
}

/// Counts and lengths are varints read into `usize`.
impl Encode for usize {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        u64::try_from(*self).unwrap_or(u64::MAX).encode(buf);
    }
}

impl Decode for usize {
    /// # Errors
    /// [`DecodeError::BoundsExceeded`] when the varint does not fit the platform's `usize`.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let value = VarInt::decode(buf)?.into_inner();
        Self::try_from(value).map_err(|_| DecodeError::BoundsExceeded("usize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{assert_golden, decode_hex};
    use proptest::prelude::*;

    #[test]
    fn golden_varints() {
        // Spec §14 item 21.
        let table: [(u64, &str); 9] = [
            (0, "00"),
            (63, "3f"),
            (64, "4040"),
            (16383, "7fff"),
            (16384, "80004000"),
            ((1 << 30) - 1, "bfffffff"),
            (1 << 30, "c000000040000000"),
            ((1 << 62) - 1, "ffffffffffffffff"),
            (0xff0bad02, "c0000000ff0bad02"),
        ];
        for (value, hex) in table {
            assert_golden(hex, &VarInt(value));
            assert_golden(hex, &value);
            assert_eq!(varint_len(value), hex.len() / 2);
        }
    }

    #[test]
    fn accepts_non_minimal_forms() {
        assert_eq!(decode_hex::<u64>("4001"), Ok(1));
        assert_eq!(decode_hex::<u64>("80000001"), Ok(1));
        assert_eq!(decode_hex::<u64>("c000000000000001"), Ok(1));
    }

    #[test]
    fn rejects_u32_overflow() {
        assert_eq!(decode_hex::<u32>("bfffffff"), Ok((1 << 30) - 1));
        assert_eq!(decode_hex::<u32>("c0000000ffffffff"), Ok(u32::MAX));
        assert_eq!(
            decode_hex::<u32>("c000000100000000"),
            Err(DecodeError::BoundsExceeded("u32"))
        );
    }

    #[test]
    fn checked_constructors() {
        assert_eq!(VarInt::from_u64(VarInt::MAX.into_inner()), Ok(VarInt::MAX));
        assert_eq!(VarInt::from_u64(1 << 62), Err(VarIntBoundsExceeded));
        assert_eq!(VarInt::try_from(u64::MAX), Err(VarIntBoundsExceeded));
        assert_eq!(VarInt::from_u32(u32::MAX).into_inner(), u64::from(u32::MAX));
        assert_eq!(
            DecodeError::from(VarIntBoundsExceeded),
            DecodeError::BoundsExceeded("varint")
        );
    }

    #[test]
    fn empty_buffer_is_short() {
        assert_eq!(decode_hex::<VarInt>(""), Err(DecodeError::Short(1)));
        assert_eq!(decode_hex::<VarInt>("c000"), Err(DecodeError::Short(6)));
    }

    proptest! {
        #[test]
        fn round_trips_in_shortest_form(v in 0..=VarInt::MAX.into_inner()) {
            let mut buf = Vec::new();
            v.encode(&mut buf);
            prop_assert_eq!(buf.len(), varint_len(v));
            let mut slice = buf.as_slice();
            prop_assert_eq!(u64::decode(&mut slice), Ok(v));
            prop_assert!(slice.is_empty());
        }

        #[test]
        fn usize_round_trips(v in 0..=usize::MAX >> 2) {
            let mut buf = Vec::new();
            v.encode(&mut buf);
            prop_assert_eq!(usize::decode(&mut buf.as_slice()), Ok(v));
        }

        #[test]
        fn u32_round_trips(v: u32) {
            let mut buf = Vec::new();
            v.encode(&mut buf);
            prop_assert_eq!(u32::decode(&mut buf.as_slice()), Ok(v));
        }
    }
}
