//! Stream types: the varint at the start of every stream (spec §1, §5).

use bytes::{Buf, BufMut};

use crate::coding::{Decode, DecodeError, Encode};

/// The type of a bidirectional stream, the first varint its opener writes.
///
/// An unknown type fails to decode with [`DecodeError::InvalidValue`]; the receiver then resets
/// and stops that stream with Decode (5) and keeps the session (spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BiStream {
    /// `0`: the session stream, opened once by the client for SETUP (spec §5.1).
    Session,
    /// `1`: an announce stream, opened by the side that wants announcements (spec §5.2).
    Announce,
    /// `2`: a subscribe stream, opened by the subscriber (spec §5.3).
    Subscribe,
    /// `3`: a fetch stream (spec §5.4).
    Fetch,
    /// `4`: an info stream (spec §5.5).
    Info,
}

impl BiStream {
    /// The wire value.
    pub const fn code(self) -> u64 {
        match self {
            Self::Session => 0,
            Self::Announce => 1,
            Self::Subscribe => 2,
            Self::Fetch => 3,
            Self::Info => 4,
        }
    }
}

impl Encode for BiStream {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.code().encode(buf);
    }
}

impl Decode for BiStream {
    /// # Errors
    /// [`DecodeError::InvalidValue`] with `"stream type"` for an unknown type.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        match u64::decode(buf)? {
            0 => Ok(Self::Session),
            1 => Ok(Self::Announce),
            2 => Ok(Self::Subscribe),
            3 => Ok(Self::Fetch),
            4 => Ok(Self::Info),
            _ => Err(DecodeError::InvalidValue("stream type")),
        }
    }
}

/// The type of a unidirectional stream, the first varint its opener writes.
///
/// An unknown type fails to decode with [`DecodeError::InvalidValue`] (spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniStream {
    /// `0`: a group stream, one per group, opened by the publisher (spec §5.6).
    Group,
}

impl UniStream {
    /// The wire value.
    pub const fn code(self) -> u64 {
        match self {
            Self::Group => 0,
        }
    }
}

impl Encode for UniStream {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.code().encode(buf);
    }
}

impl Decode for UniStream {
    /// # Errors
    /// [`DecodeError::InvalidValue`] with `"stream type"` for an unknown type.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        match u64::decode(buf)? {
            0 => Ok(Self::Group),
            _ => Err(DecodeError::InvalidValue("stream type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{assert_golden, decode_hex};

    #[test]
    fn golden_stream_types() {
        assert_golden("00", &BiStream::Session);
        assert_golden("01", &BiStream::Announce);
        assert_golden("02", &BiStream::Subscribe);
        assert_golden("03", &BiStream::Fetch);
        assert_golden("04", &BiStream::Info);
        assert_golden("00", &UniStream::Group);
        // Non-minimal forms are the same type.
        assert_eq!(decode_hex::<BiStream>("4002"), Ok(BiStream::Subscribe));
    }

    #[test]
    fn rejects_unknown_stream_types() {
        for hex in ["05", "3f", "ffffffffffffffff"] {
            assert_eq!(
                decode_hex::<BiStream>(hex),
                Err(DecodeError::InvalidValue("stream type"))
            );
        }
        assert_eq!(
            decode_hex::<UniStream>("01"),
            Err(DecodeError::InvalidValue("stream type"))
        );
    }
}
