//! The [`GroupOrder`] encoding: a varint, 0 ascending or 1 descending (spec §3).

use bytes::{Buf, BufMut};

use super::{Decode, DecodeError, Encode};
use crate::GroupOrder;

/// Ascending is `0`, descending is `1` (the drafts' "0 = default" does not exist in 0.8.0).
impl Encode for GroupOrder {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        let value: u64 = match self {
            Self::Ascending => 0,
            Self::Descending => 1,
        };
        value.encode(buf);
    }
}

impl Decode for GroupOrder {
    /// # Errors
    /// [`DecodeError::InvalidValue`] for any value other than 0 or 1.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        match u64::decode(buf)? {
            0 => Ok(Self::Ascending),
            1 => Ok(Self::Descending),
            _ => Err(DecodeError::InvalidValue("group order")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{assert_golden, decode_hex};

    #[test]
    fn golden_orders() {
        assert_golden("00", &GroupOrder::Ascending);
        assert_golden("01", &GroupOrder::Descending);
        assert_eq!(decode_hex::<GroupOrder>("4001"), Ok(GroupOrder::Descending));
    }

    #[test]
    fn rejects_unknown_order() {
        assert_eq!(
            decode_hex::<GroupOrder>("02"),
            Err(DecodeError::InvalidValue("group order"))
        );
        assert_eq!(
            decode_hex::<GroupOrder>("ffffffffffffffff"),
            Err(DecodeError::InvalidValue("group order"))
        );
    }
}
