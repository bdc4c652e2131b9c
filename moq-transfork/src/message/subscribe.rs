//! The subscribe stream: SUBSCRIBE and SUBSCRIBE_UPDATE from the subscriber, GROUP_DROP from the
//! publisher (spec §5.3, §6.4–§6.6). The publisher's INFO reply lives in [`super::info`].

use std::time::Duration;

use bytes::{Buf, BufMut};

use crate::coding::{Decode, DecodeError, Encode, OptionalSeq, Priority};
use crate::{GroupOrder, Path};

/// SUBSCRIBE: the first message on a subscribe stream (spec §6.4).
///
/// A 0.8.0 publisher ignores everything but `id` and `path` when choosing what to send; the
/// other fields end up echoed in INFO and forwarded upstream by relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Chosen by the subscriber, per session, from 0; group streams carry it back.
    pub id: u64,
    /// The exact track path.
    pub path: Path,
    /// The subscriber's priority for this track (one byte, priority + 128; 0.8.0 sends 0).
    pub priority: i8,
    /// The order in which the subscriber prefers groups (0.8.0 sends descending).
    pub group_order: GroupOrder,
    /// How long a group stays useful after a newer one starts (0.8.0 sends 0).
    pub group_expires: Duration,
    /// The first group wanted; `None` means "from the latest" (0.8.0 always sends `None`).
    pub group_min: Option<u64>,
    /// The last group wanted; `None` means open-ended (0.8.0 always sends `None`).
    pub group_max: Option<u64>,
}

impl Encode for Subscribe {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.id.encode(buf);
        self.path.encode(buf);
        Priority(self.priority).encode(buf);
        self.group_order.encode(buf);
        self.group_expires.encode(buf);
        OptionalSeq(self.group_min).encode(buf);
        OptionalSeq(self.group_max).encode(buf);
    }
}

impl Decode for Subscribe {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            id: u64::decode(buf)?,
            path: Path::decode(buf)?,
            priority: Priority::decode(buf)?.0,
            group_order: GroupOrder::decode(buf)?,
            group_expires: Duration::decode(buf)?,
            group_min: OptionalSeq::decode(buf)?.0,
            group_max: OptionalSeq::decode(buf)?.0,
        })
    }
}

/// SUBSCRIBE_UPDATE: changes to a subscription, sent after SUBSCRIBE (spec §6.5).
///
/// This is the five-field layout that the 0.8.0 **decoder** reads. Note that the priority here
/// is a plain varint, unlike the +128 byte of [`Subscribe::priority`]. 0.8.0's own encoder leaves
/// out `group_expires`, and its publisher ignores updates anyway, so **never send this to a
/// 0.8.0 peer** (spec §15); we decode it to tolerate peers that do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeUpdate {
    /// The new priority, as a varint.
    pub priority: u64,
    /// The new group order.
    pub group_order: GroupOrder,
    /// The new group expiry.
    pub group_expires: Duration,
    /// The new first group, or `None`.
    pub group_min: Option<u64>,
    /// The new last group, or `None`.
    pub group_max: Option<u64>,
}

impl Encode for SubscribeUpdate {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.priority.encode(buf);
        self.group_order.encode(buf);
        self.group_expires.encode(buf);
        OptionalSeq(self.group_min).encode(buf);
        OptionalSeq(self.group_max).encode(buf);
    }
}

impl Decode for SubscribeUpdate {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            priority: u64::decode(buf)?,
            group_order: GroupOrder::decode(buf)?,
            group_expires: Duration::decode(buf)?,
            group_min: OptionalSeq::decode(buf)?.0,
            group_max: OptionalSeq::decode(buf)?.0,
        })
    }
}

/// GROUP_DROP: the publisher could not deliver some groups (spec §6.6), sent on the subscribe
/// stream after INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDrop {
    /// The first dropped group.
    pub sequence: u64,
    /// How many more groups after `sequence` were dropped (0.8.0 always sends 0).
    pub count: u64,
    /// Why, as an unmapped error code of spec §8 (see [`crate::Error::from_code`]).
    pub code: u32,
}

impl Encode for GroupDrop {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.sequence.encode(buf);
        self.count.encode(buf);
        self.code.encode(buf);
    }
}

impl Decode for GroupDrop {
    /// # Errors
    /// [`DecodeError::BoundsExceeded`] when the code does not fit in a `u32`.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            sequence: u64::decode(buf)?,
            count: u64::decode(buf)?,
            code: u32::decode(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{
        any_duration, any_optional_seq, any_order, any_path, any_varint, assert_golden, decode_hex,
        round_trip, Seq,
    };
    use crate::message::BiStream;
    use proptest::prelude::*;

    #[test]
    fn golden_subscribe() {
        // Spec §14 item 9 (live-verified; what moq-clock sends).
        let clock = Subscribe {
            id: 0,
            path: Path::from_iter(["clock"]),
            priority: 0,
            group_order: GroupOrder::Descending,
            group_expires: Duration::ZERO,
            group_min: None,
            group_max: None,
        };
        assert_golden(
            "02 00 01 05 636c6f636b 80 01 00 00 00",
            &Seq(BiStream::Subscribe, clock),
        );

        // Item 10: every field away from its default.
        let video = Subscribe {
            id: 70,
            path: Path::from_iter(["demo", "bbb", "video"]),
            priority: -1,
            group_order: GroupOrder::Ascending,
            group_expires: Duration::from_secs(10),
            group_min: Some(0),
            group_max: Some(9),
        };
        assert_golden(
            "02 4046 03 04 64656d6f 03 626262 05 766964656f 7f 00 6710 01 0a",
            &Seq(BiStream::Subscribe, video),
        );
    }

    #[test]
    fn golden_subscribe_update_in_decoder_layout() {
        // Spec §14 item 18: the layout the 0.8.0 decoder reads.
        let update = SubscribeUpdate {
            priority: 1,
            group_order: GroupOrder::Descending,
            group_expires: Duration::from_millis(500),
            group_min: None,
            group_max: None,
        };
        assert_golden("01 01 41f4 00 00", &update);
        // What the 0.8.0 encoder emits for the same values lacks `expires`: it is one field
        // short, so it does not decode as a whole update.
        assert_eq!(
            decode_hex::<SubscribeUpdate>("01 01 00 00"),
            Err(DecodeError::Short(1))
        );
    }

    #[test]
    fn golden_group_drop() {
        // Spec §14 item 12 (the first one live-verified).
        let drop = |sequence| GroupDrop {
            sequence,
            count: 0,
            code: 4,
        };
        assert_golden("34 00 04", &drop(0x34));
        assert_golden("05 00 04", &drop(5));
    }

    #[test]
    fn rejects_invalid_fields() {
        assert_eq!(
            decode_hex::<GroupDrop>("00 00 c000000100000000"),
            Err(DecodeError::BoundsExceeded("u32"))
        );
        assert_eq!(
            decode_hex::<Subscribe>("00 00 80 02 00 00 00"),
            Err(DecodeError::InvalidValue("group order"))
        );
        assert_eq!(
            decode_hex::<SubscribeUpdate>("00 02 00 00 00"),
            Err(DecodeError::InvalidValue("group order"))
        );
    }

    prop_compose! {
        fn any_subscribe()(
            id in any_varint(),
            path in any_path(),
            priority: i8,
            group_order in any_order(),
            group_expires in any_duration(),
            group_min in any_optional_seq(),
            group_max in any_optional_seq(),
        ) -> Subscribe {
            Subscribe { id, path, priority, group_order, group_expires, group_min, group_max }
        }
    }

    prop_compose! {
        fn any_subscribe_update()(
            priority in any_varint(),
            group_order in any_order(),
            group_expires in any_duration(),
            group_min in any_optional_seq(),
            group_max in any_optional_seq(),
        ) -> SubscribeUpdate {
            SubscribeUpdate { priority, group_order, group_expires, group_min, group_max }
        }
    }

    proptest! {
        #[test]
        fn subscribe_round_trips(msg in any_subscribe()) {
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }

        #[test]
        fn subscribe_update_round_trips(msg in any_subscribe_update()) {
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }

        #[test]
        fn group_drop_round_trips(sequence in any_varint(), count in any_varint(), code: u32) {
            let msg = GroupDrop { sequence, count, code };
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }
    }
}
