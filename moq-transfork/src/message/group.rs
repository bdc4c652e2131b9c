//! The group stream: the GROUP header, then FRAME headers each followed by their payload
//! (spec §5.6, §6.10, §6.11).

use bytes::{Buf, BufMut};

use crate::coding::{Decode, DecodeError, Encode};

/// GROUP: the header of a group stream, after stream type 0 (spec §6.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupHeader {
    /// The [`Subscribe::id`](super::Subscribe::id) this group answers.
    pub subscribe: u64,
    /// The group's sequence number within its track.
    pub sequence: u64,
}

impl Encode for GroupHeader {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.subscribe.encode(buf);
        self.sequence.encode(buf);
    }
}

impl Decode for GroupHeader {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            subscribe: u64::decode(buf)?,
            sequence: u64::decode(buf)?,
        })
    }
}

/// The header of one FRAME on a group stream (or a fetch reply): the payload size (spec §6.11).
///
/// Exactly `size` payload bytes follow. The codec does not read them: frames are streamed in
/// chunks and their size is not capped here. Zero-length frames are valid. A FIN inside the
/// payload is WrongSize (14), not a decode error (spec §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The payload length in bytes.
    pub size: u64,
}

impl Encode for FrameHeader {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.size.encode(buf);
    }
}

impl Decode for FrameHeader {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        Ok(Self {
            size: u64::decode(buf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{any_varint, assert_golden, encode, round_trip, Seq};
    use crate::message::UniStream;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// Reads a whole group stream: type, header, then frames until the input ends. `Short` when
    /// the input ends inside a header or a payload. Also returns the offsets at which a message
    /// ended.
    fn read_group_stream(
        mut buf: &[u8],
    ) -> Result<(GroupHeader, Vec<Bytes>, Vec<usize>), DecodeError> {
        let total = buf.len();
        assert_eq!(UniStream::decode(&mut buf)?, UniStream::Group);
        let header = GroupHeader::decode(&mut buf)?;
        let mut ends = vec![total - buf.len()];
        let mut frames = Vec::new();
        while !buf.is_empty() {
            let size = usize::try_from(FrameHeader::decode(&mut buf)?.size).unwrap();
            if buf.len() < size {
                return Err(DecodeError::Short(size - buf.len()));
            }
            frames.push(Bytes::copy_from_slice(&buf[..size]));
            buf.advance(size);
            ends.push(total - buf.len());
        }
        Ok((header, frames, ends))
    }

    fn write_group_stream(header: GroupHeader, frames: &[&[u8]]) -> Vec<u8> {
        let mut buf = encode(&Seq(UniStream::Group, header));
        for frame in frames {
            FrameHeader {
                size: frame.len() as u64,
            }
            .encode(&mut buf);
            buf.extend_from_slice(frame);
        }
        buf
    }

    /// Checks a golden group stream both ways, and that a prefix decodes only when it ends on
    /// a message boundary (where a FIN would be valid) and is `Short` everywhere else.
    #[track_caller]
    fn assert_golden_group(hex: &str, header: GroupHeader, frames: &[&[u8]]) {
        let bytes = hex::decode(hex.replace(' ', "")).unwrap();
        let (decoded, payloads, ends) = read_group_stream(&bytes).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(payloads, frames);
        assert_eq!(
            hex::encode(write_group_stream(header, frames)),
            hex::encode(&bytes)
        );
        for end in 0..bytes.len() {
            let result = read_group_stream(&bytes[..end]);
            if ends.contains(&end) {
                assert!(result.is_ok(), "prefix of {end} bytes ends on a boundary");
            } else {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, DecodeError::Short(n) if n >= 1 && end + n <= bytes.len()),
                    "prefix of {end} bytes: {err:?}"
                );
            }
        }
    }

    #[test]
    fn golden_group_streams() {
        // Spec §14 item 13 (live-verified, moq-clock through the relay), cut after two seconds.
        assert_golden_group(
            "00 00 32 11 323032362d31312d32342030393a35303a 02 3535 02 3536",
            GroupHeader {
                subscribe: 0,
                sequence: 0x32,
            },
            &[b"2026-11-24 09:50:", b"55", b"56"],
        );
        // Item 13, derived variant.
        assert_golden_group(
            "00 00 1b 11 323032342d31322d31322031313a32373a 02 3035",
            GroupHeader {
                subscribe: 0,
                sequence: 27,
            },
            &[b"2024-12-12 11:27:", b"05"],
        );
        // Item 14 (live-verified: printed as "hello world").
        assert_golden_group(
            "00 00 07 06 68656c6c6f20 05 776f726c64",
            GroupHeader {
                subscribe: 0,
                sequence: 7,
            },
            &[b"hello ", b"world"],
        );
    }

    #[test]
    fn golden_headers_with_empty_frame() {
        // Spec §14 item 15: a 2-byte sequence, an empty frame, then the header of FRAME(100).
        let header = Seq(
            UniStream::Group,
            GroupHeader {
                subscribe: 3,
                sequence: 1000,
            },
        );
        let frames = Seq(FrameHeader { size: 0 }, FrameHeader { size: 100 });
        assert_golden("00 03 43e8 00 4064", &Seq(header, frames));
    }

    proptest! {
        #[test]
        fn group_header_round_trips(subscribe in any_varint(), sequence in any_varint()) {
            let msg = GroupHeader { subscribe, sequence };
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }

        #[test]
        fn frame_header_round_trips(size in any_varint()) {
            let msg = FrameHeader { size };
            prop_assert_eq!(round_trip(&msg), Ok(msg));
        }
    }
}
