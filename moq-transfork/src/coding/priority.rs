//! The one-byte track priority and the optional group number (spec §3).

use bytes::{Buf, BufMut};

use super::{Decode, DecodeError, Encode};

/// A track priority (`i8`) as it travels in SUBSCRIBE, INFO and FETCH: **one raw byte equal to
/// priority + 128**, not a varint (spec §3). So −128 is `00`, 0 is `80` and 127 is `ff`.
///
/// Messages hold a plain `i8`; they wrap it in `Priority` to encode or decode it.
///
/// ```
/// use moq_transfork::coding::{Encode, Priority};
/// let mut buf = Vec::new();
/// Priority(-1).encode(&mut buf);
/// assert_eq!(buf, [0x7f]);
/// assert_eq!(Priority::from_byte(0x80), Priority(0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub i8);

impl Priority {
    /// The wire byte: `priority + 128`.
    pub const fn to_byte(self) -> u8 {
        (self.0 as u8) ^ 0x80
    }

    /// The priority of a wire byte: `byte − 128`. Every byte is valid.
    pub const fn from_byte(byte: u8) -> Self {
        Self((byte ^ 0x80) as i8)
    }
}

impl From<i8> for Priority {
    fn from(value: i8) -> Self {
        Self(value)
    }
}

impl From<Priority> for i8 {
    fn from(value: Priority) -> Self {
        value.0
    }
}

impl Encode for Priority {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(self.to_byte());
    }
}

impl Decode for Priority {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        if !buf.has_remaining() {
            return Err(DecodeError::Short(1));
        }
        Ok(Self::from_byte(buf.get_u8()))
    }
}

/// An optional group number, as in the `group min` and `group max` of SUBSCRIBE: a varint that
/// is `0` for none and `n + 1` for group `n` (spec §3).
///
/// `Some(n)` needs `n < VarInt::MAX` to be encodable; every value decoded from the wire
/// satisfies that, and a larger one is a caller bug (see the `u64` [`Encode`] impl).
///
/// ```
/// use moq_transfork::coding::{Encode, OptionalSeq};
/// let mut buf = Vec::new();
/// OptionalSeq(None).encode(&mut buf);
/// OptionalSeq(Some(9)).encode(&mut buf);
/// assert_eq!(buf, [0x00, 0x0a]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OptionalSeq(pub Option<u64>);

impl From<Option<u64>> for OptionalSeq {
    fn from(value: Option<u64>) -> Self {
        Self(value)
    }
}

impl From<OptionalSeq> for Option<u64> {
    fn from(value: OptionalSeq) -> Self {
        value.0
    }
}

impl Encode for OptionalSeq {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self.0 {
            None => 0u64.encode(buf),
            Some(n) => n.saturating_add(1).encode(buf),
        }
    }
}

impl Decode for OptionalSeq {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let value = u64::decode(buf)?;
        Ok(Self(value.checked_sub(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{any_optional_seq, assert_golden, decode_hex, round_trip};
    use proptest::prelude::*;

    #[test]
    fn golden_priorities() {
        // Spec §14 item 21.
        for (priority, hex) in [(-128, "00"), (-1, "7f"), (0, "80"), (1, "81"), (127, "ff")] {
            assert_golden(hex, &Priority(priority));
        }
    }

    #[test]
    fn every_byte_is_a_priority() {
        for byte in 0..=u8::MAX {
            assert_eq!(Priority::from_byte(byte).to_byte(), byte);
            assert_eq!(
                i16::from(Priority::from_byte(byte).0),
                i16::from(byte) - 128
            );
        }
    }

    #[test]
    fn golden_optional_seqs() {
        assert_golden("00", &OptionalSeq(None));
        assert_golden("01", &OptionalSeq(Some(0)));
        assert_golden("0a", &OptionalSeq(Some(9)));
        assert_golden("4040", &OptionalSeq(Some(63)));
        assert_eq!(
            decode_hex::<OptionalSeq>("ffffffffffffffff"),
            Ok(OptionalSeq(Some((1 << 62) - 2)))
        );
    }

    proptest! {
        #[test]
        fn priorities_round_trip(p: i8) {
            prop_assert_eq!(round_trip(&Priority(p)), Ok(Priority(p)));
        }

        #[test]
        fn optional_seqs_round_trip(seq in any_optional_seq()) {
            prop_assert_eq!(round_trip(&OptionalSeq(seq)), Ok(OptionalSeq(seq)));
        }
    }
}
