//! Caps on every count and length a peer controls.
//!
//! The 0.8.0 wire format (spec §3) puts no bound on any count or length: a peer could announce a
//! path of 2^62 parts or a SETUP with 2^62 versions. Every decoder in this crate checks a
//! peer-sent count or length against one of these constants **before** it allocates or reads,
//! and fails with [`DecodeError::TooLarge`](super::DecodeError::TooLarge) when it is exceeded.
//! A length within its limit but longer than the bytes at hand is
//! [`DecodeError::Short`](super::DecodeError::Short) (read more and retry).
//!
//! The limits are generous next to what 0.8.0 peers send: moq-relay and moq-clock use paths of a
//! few short parts, one version and no extensions. Frame payloads are *not* capped here: frames
//! are streamed chunk by chunk and never held whole by the codec.

/// Largest control message, in bytes, that a stream reader buffers: 8 KiB.
///
/// Messages carry no length prefix (spec §3), so a reader keeps buffering until a message
/// decodes; this bounds the memory a peer can make it hold, per stream. A message known to be
/// longer (from a declared length, or from its bytes) is refused with
/// [`DecodeError::TooLarge`](super::DecodeError::TooLarge)`("message")`, code 5. It also caps
/// any single string or byte string.
///
/// The largest message a peer has reason to send fits with room to spare: a CLIENT_SETUP with
/// [`MAX_VERSIONS`] versions (513 bytes) and a token of [`MAX_EXTENSION_SIZE`] bytes in one
/// extension (4 102 bytes with its id and length) is 4 617 bytes; a SUBSCRIBE, FETCH or
/// ANNOUNCE with a path of [`MAX_PATH_BYTES`] in [`MAX_PATH_PARTS`] parts about 4 200.
pub const MAX_MESSAGE_SIZE: usize = 8 * 1024;

/// Most parts in one [`Path`](crate::Path) (draft-03 also says at most 32).
pub const MAX_PATH_PARTS: usize = 32;

/// Most bytes in one [`Path`](crate::Path), summed over all its parts.
pub const MAX_PATH_BYTES: usize = 4096;

/// Most versions in one CLIENT_SETUP (0.8.0 offers exactly one).
pub const MAX_VERSIONS: usize = 64;

/// Most extensions in one CLIENT_SETUP or SERVER_SETUP (0.8.0 sends none).
pub const MAX_EXTENSIONS: usize = 64;

/// Largest payload of a single SETUP extension, in bytes: room for a 4 KiB token.
///
/// All extensions together are bounded by [`MAX_MESSAGE_SIZE`].
pub const MAX_EXTENSION_SIZE: usize = 4096;
