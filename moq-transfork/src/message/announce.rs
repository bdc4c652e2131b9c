//! The announce stream: ANNOUNCE_PLEASE and ANNOUNCE (spec §5.2, §6.3).

use bytes::{Buf, BufMut};

use crate::coding::{Decode, DecodeError, Encode};
use crate::Path;

/// ANNOUNCE_PLEASE: the opener of an announce stream asks for every track under `prefix`
/// (spec §6.3). It is the only message sent in that direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnouncePlease {
    /// Only tracks whose path starts with these whole parts are announced; empty means all.
    pub prefix: Path,
}

impl Encode for AnnouncePlease {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.prefix.encode(buf);
    }
}

impl Decode for AnnouncePlease {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            prefix: Path::decode(buf)?,
        })
    }
}

/// ANNOUNCE: one change in the set of tracks under the requested prefix (spec §6.3), sent
/// repeatedly by the publisher.
///
/// On the wire: a status byte (`0` ended, `1` active, `2` live), then the suffix path unless
/// the status is live. The full track path is the requested prefix followed by the suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announce {
    /// Status `0`: the track at prefix + `suffix` is no longer available.
    Ended {
        /// The track path after the requested prefix.
        suffix: Path,
    },
    /// Status `1`: the track at prefix + `suffix` is available.
    Active {
        /// The track path after the requested prefix (may be empty).
        suffix: Path,
    },
    /// Status `2` (no suffix): every track that was active when the stream opened has been
    /// announced, and what follows are live changes.
    ///
    /// We decode it (tolerating newer peers), but **never send it to a 0.8.0 peer**: 0.8.0's
    /// decoder rejects status 2 and resets the stream with Decode (spec §5.2, §15).
    Live,
}

impl Announce {
    const ENDED: u8 = 0;
    const ACTIVE: u8 = 1;
    const LIVE: u8 = 2;
}

impl Encode for Announce {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Self::Ended { suffix } => {
                buf.put_u8(Self::ENDED);
                suffix.encode(buf);
            }
            Self::Active { suffix } => {
                buf.put_u8(Self::ACTIVE);
                suffix.encode(buf);
            }
            Self::Live => buf.put_u8(Self::LIVE),
        }
    }
}

impl Decode for Announce {
    /// # Errors
    /// [`DecodeError::InvalidValue`] for a status byte other than 0, 1 or 2.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        if !buf.has_remaining() {
            return Err(DecodeError::Short(1));
        }
        match buf.get_u8() {
            Self::ENDED => Ok(Self::Ended {
                suffix: Path::decode(buf)?,
            }),
            Self::ACTIVE => Ok(Self::Active {
                suffix: Path::decode(buf)?,
            }),
            Self::LIVE => Ok(Self::Live),
            _ => Err(DecodeError::InvalidValue("announce status")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{any_path, assert_golden, decode_hex, round_trip, Seq};
    use crate::message::BiStream;
    use proptest::prelude::*;

    #[test]
    fn golden_announce_please() {
        // Spec §14 item 4 (live-verified) and item 5.
        assert_golden(
            "01 00",
            &Seq(
                BiStream::Announce,
                AnnouncePlease {
                    prefix: Path::new(),
                },
            ),
        );
        assert_golden(
            "01 02 08 696e7465726e616c 07 6f726967696e73",
            &Seq(
                BiStream::Announce,
                AnnouncePlease {
                    prefix: Path::from_iter(["internal", "origins"]),
                },
            ),
        );
    }

    #[test]
    fn golden_announce() {
        let clock = Path::from_iter(["clock"]);
        // Spec §14 items 6 (live-verified), 7 and 8.
        assert_golden(
            "01 01 05 636c6f636b",
            &Announce::Active {
                suffix: clock.clone(),
            },
        );
        assert_golden("00 01 05 636c6f636b", &Announce::Ended { suffix: clock });
        assert_golden(
            "01 00",
            &Announce::Active {
                suffix: Path::new(),
            },
        );
        assert_golden("02", &Announce::Live);
    }

    #[test]
    fn rejects_unknown_status() {
        assert_eq!(
            decode_hex::<Announce>("03 00"),
            Err(DecodeError::InvalidValue("announce status"))
        );
        assert_eq!(
            decode_hex::<Announce>("ff"),
            Err(DecodeError::InvalidValue("announce status"))
        );
    }

    fn any_announce() -> impl Strategy<Value = Announce> {
        prop_oneof![
            any_path().prop_map(|suffix| Announce::Ended { suffix }),
            any_path().prop_map(|suffix| Announce::Active { suffix }),
            Just(Announce::Live),
        ]
    }

    proptest! {
        #[test]
        fn announce_please_round_trips(prefix in any_path()) {
            let msg = AnnouncePlease { prefix };
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }

        #[test]
        fn announce_round_trips(msg in any_announce()) {
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }
    }
}
