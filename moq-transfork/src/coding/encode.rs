//! The [`Encode`] trait.

use bytes::BufMut;

/// A value that can be written to the wire.
///
/// Encoding cannot fail: every value that can be constructed has an encoding. Values that could
/// exceed the varint range (group sequences, say) are checked where they are created.
pub trait Encode {
    /// Appends the encoding of `self` to `buf`.
    fn encode<B: BufMut>(&self, buf: &mut B);
}
