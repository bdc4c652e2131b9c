//! Length-prefixed strings and byte strings, and durations (spec §3).

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};

use super::limits::MAX_MESSAGE_SIZE;
use super::{Decode, DecodeError, Encode, VarInt};

/// Reads a varint length and checks it, in this order, against `max` (→
/// [`DecodeError::TooLarge`]`(what)`) and against the bytes left in `buf` (→
/// [`DecodeError::Short`] with the bytes missing). Nothing is allocated before both checks pass.
pub(crate) fn decode_len<B: Buf>(
    buf: &mut B,
    max: usize,
    what: &'static str,
) -> Result<usize, DecodeError> {
    let len = VarInt::decode(buf)?.into_inner();
    // Compare as u64 so a length beyond `usize` is TooLarge, not BoundsExceeded.
    if len > max as u64 {
        return Err(DecodeError::TooLarge(what));
    }
    let len = usize::try_from(len).map_err(|_| DecodeError::TooLarge(what))?;
    if buf.remaining() < len {
        return Err(DecodeError::Short(len - buf.remaining()));
    }
    Ok(len)
}

/// Reads a length-prefixed UTF-8 string of at most `max` bytes.
pub(crate) fn decode_string<B: Buf>(
    buf: &mut B,
    max: usize,
    what: &'static str,
) -> Result<String, DecodeError> {
    let len = decode_len(buf, max, what)?;
    let mut bytes = vec![0; len];
    buf.copy_to_slice(&mut bytes);
    String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

/// Reads a length-prefixed byte string of at most `max` bytes, without copying when `buf` is a
/// [`Bytes`].
pub(crate) fn decode_bytes<B: Buf>(
    buf: &mut B,
    max: usize,
    what: &'static str,
) -> Result<Bytes, DecodeError> {
    let len = decode_len(buf, max, what)?;
    Ok(buf.copy_to_bytes(len))
}

/// A string is its byte length as a varint, then its UTF-8 bytes.
impl Encode for str {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.len().encode(buf);
        buf.put_slice(self.as_bytes());
    }
}

impl Encode for String {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.as_str().encode(buf);
    }
}

impl Decode for String {
    /// # Errors
    /// [`DecodeError::TooLarge`] above [`MAX_MESSAGE_SIZE`] bytes, [`DecodeError::InvalidUtf8`].
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        decode_string(buf, MAX_MESSAGE_SIZE, "string")
    }
}

/// A byte string is its length as a varint, then the raw bytes.
impl Encode for [u8] {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.len().encode(buf);
        buf.put_slice(self);
    }
}

impl Encode for Bytes {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.as_ref().encode(buf);
    }
}

impl Decode for Bytes {
    /// Zero-copy when `buf` is itself a [`Bytes`].
    ///
    /// # Errors
    /// [`DecodeError::TooLarge`] above [`MAX_MESSAGE_SIZE`] bytes.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        decode_bytes(buf, MAX_MESSAGE_SIZE, "bytes")
    }
}

/// A duration is a varint of whole milliseconds.
///
/// Sub-millisecond parts are dropped, and durations beyond [`VarInt::MAX`] milliseconds (about
/// 146 million years) are written as [`VarInt::MAX`].
impl Encode for Duration {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        let millis = u64::try_from(self.as_millis()).unwrap_or(u64::MAX);
        millis.min(VarInt::MAX.into_inner()).encode(buf);
    }
}

impl Decode for Duration {
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        u64::decode(buf).map(Self::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{any_duration, assert_golden, decode_hex, encode, round_trip};
    use proptest::prelude::*;

    #[test]
    fn golden_strings() {
        assert_golden("00", &String::new());
        assert_golden("05636c6f636b", &"clock".to_string());
        assert_golden("0568c3a96c6c", &"héll".to_string());
        assert_golden("00", &Bytes::new());
        assert_golden("02aabb", &Bytes::from_static(&[0xaa, 0xbb]));
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert_eq!(
            decode_hex::<String>("02c328"),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn length_beyond_buffer_is_short_and_beyond_limit_is_too_large() {
        assert_eq!(decode_hex::<String>("0561"), Err(DecodeError::Short(4)));
        assert_eq!(decode_hex::<Bytes>("4100aa"), Err(DecodeError::Short(255)));
        // 65537 bytes announced with none present: rejected before any allocation.
        assert_eq!(
            decode_hex::<String>("80010001"),
            Err(DecodeError::TooLarge("string"))
        );
        assert_eq!(
            decode_hex::<Bytes>("ffffffffffffffff"),
            Err(DecodeError::TooLarge("bytes"))
        );
    }

    #[test]
    fn bytes_decode_shares_the_source() {
        let source = Bytes::from(encode(&Bytes::from_static(b"payload")));
        let mut cursor = source.clone();
        let decoded = Bytes::decode(&mut cursor).unwrap();
        assert_eq!(decoded, Bytes::from_static(b"payload"));
        // The decoded bytes point into the source allocation.
        assert_eq!(decoded.as_ptr(), source[1..].as_ptr());
    }

    #[test]
    fn durations_are_whole_milliseconds() {
        assert_golden("41f4", &Duration::from_millis(500));
        assert_golden("6710", &Duration::from_secs(10));
        assert_eq!(
            encode(&Duration::from_micros(1999)),
            encode(&Duration::from_millis(1))
        );
        assert_eq!(
            encode(&Duration::MAX),
            hex::decode("ffffffffffffffff").unwrap()
        );
    }

    proptest! {
        #[test]
        fn strings_round_trip(s in ".{0,64}") {
            prop_assert_eq!(round_trip(&s), Ok(s));
        }

        #[test]
        fn bytes_round_trip(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let b = Bytes::from(b);
            prop_assert_eq!(round_trip(&b), Ok(b));
        }

        #[test]
        fn durations_round_trip(d in any_duration()) {
            prop_assert_eq!(round_trip(&d), Ok(d));
        }
    }
}
