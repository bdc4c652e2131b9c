//! FETCH: a request for one group, from a frame offset, on a fetch stream (spec §5.4, §6.9).

use bytes::{Buf, BufMut};

use crate::coding::{Decode, DecodeError, Encode, Priority};
use crate::Path;

/// FETCH: asks for the frames of one group, after stream type 3 (spec §6.9).
///
/// A 0.8.0 publisher panics on it and never sends it, so **do not send FETCH to a 0.8.0 peer**
/// (spec §15). Between our peers, the reply is the group's frames from frame index `offset`,
/// each as a [`FrameHeader`](super::FrameHeader) plus payload, then FIN (spec §5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The exact track path.
    pub path: Path,
    /// The request's priority (one byte, priority + 128).
    pub priority: i8,
    /// The group sequence.
    pub group: u64,
    /// The index of the first frame wanted.
    pub offset: u64,
}

impl Encode for Fetch {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.path.encode(buf);
        Priority(self.priority).encode(buf);
        self.group.encode(buf);
        self.offset.encode(buf);
    }
}

impl Decode for Fetch {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            path: Path::decode(buf)?,
            priority: Priority::decode(buf)?.0,
            group: u64::decode(buf)?,
            offset: u64::decode(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{any_path, any_varint, assert_golden, round_trip, Seq};
    use crate::message::BiStream;
    use proptest::prelude::*;

    #[test]
    fn golden_fetch() {
        // Spec §14 item 16.
        let fetch = Fetch {
            path: Path::from_iter(["clock"]),
            priority: 0,
            group: 27,
            offset: 0,
        };
        assert_golden("03 01 05 636c6f636b 80 1b 00", &Seq(BiStream::Fetch, fetch));
    }

    proptest! {
        #[test]
        fn fetch_round_trips(
            path in any_path(),
            priority: i8,
            group in any_varint(),
            offset in any_varint(),
        ) {
            let msg = Fetch { path, priority, group, offset };
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }
    }
}
