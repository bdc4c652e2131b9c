//! INFO, the publisher's description of a track, and INFO_REQUEST, which asks for it on an info
//! stream (spec §5.5, §6.7, §6.8).

use std::time::Duration;

use bytes::{Buf, BufMut};

use crate::coding::{Decode, DecodeError, Encode, Priority};
use crate::{GroupOrder, Path};

/// INFO: the first reply on a subscribe stream, and the only reply on an info stream
/// (spec §6.7).
///
/// The field order is priority, order, expires, latest (the drafts put latest second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// The track's priority (one byte, priority + 128).
    pub priority: i8,
    /// The track's group order.
    pub group_order: GroupOrder,
    /// How long a group stays useful after a newer one starts.
    pub group_expires: Duration,
    /// The latest group sequence, **or 0 when the track has no group yet**: the value is
    /// ambiguous with "the latest group is 0" (spec §5.3).
    pub group_latest: u64,
}

impl Encode for Info {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        Priority(self.priority).encode(buf);
        self.group_order.encode(buf);
        self.group_expires.encode(buf);
        self.group_latest.encode(buf);
    }
}

impl Decode for Info {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            priority: Priority::decode(buf)?.0,
            group_order: GroupOrder::decode(buf)?,
            group_expires: Duration::decode(buf)?,
            group_latest: u64::decode(buf)?,
        })
    }
}

/// INFO_REQUEST: asks for the [`Info`] of one track, after stream type 4 (spec §6.8).
/// 0.8.0 answers it but never sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfoRequest {
    /// The exact track path.
    pub path: Path,
}

impl Encode for InfoRequest {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.path.encode(buf);
    }
}

impl Decode for InfoRequest {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            path: Path::decode(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{
        any_duration, any_order, any_path, any_varint, assert_golden, decode_hex, round_trip, Seq,
    };
    use crate::message::BiStream;
    use proptest::prelude::*;

    #[test]
    fn golden_info() {
        // Spec §14 item 11 (the first one live-verified).
        let info = |group_latest| Info {
            priority: 0,
            group_order: GroupOrder::Descending,
            group_expires: Duration::ZERO,
            group_latest,
        };
        assert_golden("80 01 00 00", &info(0));
        assert_golden("80 01 00 1b", &info(27));
    }

    #[test]
    fn golden_info_request() {
        // Spec §14 item 17.
        assert_golden(
            "04 01 05 636c6f636b",
            &Seq(
                BiStream::Info,
                InfoRequest {
                    path: Path::from_iter(["clock"]),
                },
            ),
        );
    }

    #[test]
    fn rejects_unknown_order() {
        assert_eq!(
            decode_hex::<Info>("80 02 00 00"),
            Err(DecodeError::InvalidValue("group order"))
        );
    }

    proptest! {
        #[test]
        fn info_round_trips(
            priority: i8,
            group_order in any_order(),
            group_expires in any_duration(),
            group_latest in any_varint(),
        ) {
            let msg = Info { priority, group_order, group_expires, group_latest };
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }

        #[test]
        fn info_request_round_trips(path in any_path()) {
            let msg = InfoRequest { path };
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }
    }
}
