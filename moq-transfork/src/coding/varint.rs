//! QUIC variable-length integers.

/// A QUIC varint (placeholder, replaced by the codec work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarInt(u64);
