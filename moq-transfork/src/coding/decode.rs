//! The [`Decode`] trait and its error.

use bytes::Buf;

/// Why a message could not be decoded.
///
/// [`DecodeError::Short`] is not a failure of the peer: it asks the caller to read more bytes and
/// decode again from the start, and says how many more are needed at least, so a reader fed a
/// byte at a time retries once per field rather than once per byte. Every other variant means
/// the bytes are malformed; the stream they came from is reset with the Decode code (5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ended before the message did; retry once at least this many more bytes
    /// (always 1 or more) have arrived.
    ///
    /// The count is a lower bound: the field being read needs that many (the rest of a varint,
    /// the declared length of a string), later fields may need more.
    #[error("short buffer: {0} more bytes needed at least")]
    Short(usize),
    /// A field holds a value the protocol does not define (an unknown enum value or stream type).
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
    /// A string is not valid UTF-8.
    #[error("invalid utf-8")]
    InvalidUtf8,
    /// A varint does not fit the field it was read into (for example a `u32` code).
    #[error("value out of bounds for {0}")]
    BoundsExceeded(&'static str),
    /// A count or length exceeds one of the documented [`limits`](super::limits).
    #[error("too large: {0}")]
    TooLarge(&'static str),
    /// The same extension id appears twice in one SETUP message.
    #[error("duplicate extension {0}")]
    DuplicateExtension(u64),
    /// The stream ended in the middle of a message.
    #[error("stream ended inside a message")]
    UnexpectedEnd,
    /// The peer reported a decode error (code 5) about our bytes.
    #[error("rejected by peer")]
    Remote,
}

/// A value that can be read from the wire.
///
/// `decode` consumes exactly the bytes of one value from `buf`. When `buf` holds only part of
/// it, `decode` returns [`DecodeError::Short`] with a lower bound on the bytes missing; the
/// buffer's position is then unspecified, so callers decode from a copy of the cursor and
/// commit only on success.
pub trait Decode: Sized {
    /// Reads one value from the front of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Short`] when more bytes are needed, any other variant when the bytes are
    /// malformed. Never panics, whatever the input.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError>;
}
