//! The one error type of the crate, with the wire code of every variant (spec §8).

use std::fmt;
use std::sync::Arc;

use crate::coding::DecodeError;

/// Base of the HTTP/3 code space that WebTransport maps application codes into (spec §2.4).
const WIRE_BASE: u64 = 0x52e4_a40f_a8db;

/// Everything that can end a session, a stream, a track, a group or a frame.
///
/// Each variant carries the MoqTransfork error code it is sent with (spec §8). The code goes on
/// the wire in RESET_STREAM and STOP_SENDING (always mapped with [`to_wire`]), in GROUP_DROP
/// (unmapped) and in CONNECTION_CLOSE. [`Error::from_code`] is the inverse of [`Error::code`].
///
/// `Error` is cheap to clone, so one error can reach every consumer of a track or group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Code 0: nobody is interested any more; also the end of a session by FIN.
    #[error("cancelled")]
    Cancel,
    /// Code 1: the peer requires an extension we do not support (reserved; never produced).
    #[error("required extension")]
    RequiredExtension,
    /// Code 4: the transport failed (connection lost or closed, a stream that could not be
    /// written or read, a handshake or request that timed out); [`TransportError`] says how,
    /// with the underlying error as its [`source`](std::error::Error::source).
    #[error("transport error: {0}")]
    Transport(#[from] TransportError),
    /// Code 5: a malformed message, an unknown stream type or a FIN inside a message.
    #[error("decode error: {0}")]
    Decode(#[from] DecodeError),
    /// Code 9: the peers share no protocol version.
    #[error("unsupported versions")]
    Version,
    /// Code 10: a stream arrived where the protocol allows none (e.g. a second session stream).
    #[error("unexpected stream")]
    UnexpectedStream,
    /// Code 11: a value is too large for its field.
    #[error("bounds exceeded")]
    BoundsExceeded,
    /// Code 12: a path was announced or published twice.
    #[error("duplicate")]
    Duplicate,
    /// Code 13: unknown track or group, or `ended` for a path that was never active.
    #[error("not found")]
    NotFound,
    /// Code 14: a frame's payload did not match its declared size.
    #[error("wrong frame size")]
    WrongSize,
    /// Code 15: the peer broke a protocol rule (reserved by 0.8.0; used here for limits the
    /// peer ignored, such as too many concurrent requests).
    #[error("protocol violation")]
    ProtocolViolation,
    /// Code 16: the peer presented no valid token, or its token expired, or it asked for
    /// something its token does not grant where saying so leaks nothing (docs/auth.md). 0.8.0
    /// leaves the code unused.
    #[error("unauthorized")]
    Unauthorized,
    /// Code 64 + n: an application-defined code.
    #[error("application error {0}")]
    App(u32),
    /// A code received from the peer that has no meaning in spec §8.
    #[error("unknown error code {0}")]
    Unknown(u32),
}

impl Error {
    /// The MoqTransfork code of this error (spec §8).
    ///
    /// ```
    /// use moq_transfork::Error;
    /// assert_eq!(Error::NotFound.code(), 13);
    /// assert_eq!(Error::App(2).code(), 66);
    /// ```
    pub fn code(&self) -> u32 {
        match self {
            Self::Cancel => 0,
            Self::RequiredExtension => 1,
            Self::Transport(_) => 4,
            Self::Decode(_) => 5,
            Self::Version => 9,
            Self::UnexpectedStream => 10,
            Self::BoundsExceeded => 11,
            Self::Duplicate => 12,
            Self::NotFound => 13,
            Self::WrongSize => 14,
            Self::ProtocolViolation => 15,
            Self::Unauthorized => 16,
            Self::App(n) => n.saturating_add(64),
            Self::Unknown(code) => *code,
        }
    }

    /// The error a received code stands for; the inverse of [`Error::code`].
    ///
    /// Details that do not travel (the text of a transport or decode error) are lost.
    ///
    /// ```
    /// use moq_transfork::Error;
    /// assert_eq!(Error::from_code(13), Error::NotFound);
    /// assert_eq!(Error::from_code(66), Error::App(2));
    /// assert_eq!(Error::from_code(7), Error::Unknown(7));
    /// ```
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => Self::Cancel,
            1 => Self::RequiredExtension,
            4 => Self::Transport(TransportError::Remote),
            5 => Self::Decode(DecodeError::Remote),
            9 => Self::Version,
            10 => Self::UnexpectedStream,
            11 => Self::BoundsExceeded,
            12 => Self::Duplicate,
            13 => Self::NotFound,
            14 => Self::WrongSize,
            15 => Self::ProtocolViolation,
            16 => Self::Unauthorized,
            64.. => Self::App(code - 64),
            _ => Self::Unknown(code),
        }
    }

    /// A [`TransportError::Connect`] caused by `err`.
    pub(crate) fn connect(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Transport(TransportError::Connect(Cause::new(err)))
    }

    /// A [`TransportError::Connection`] caused by `err`.
    pub(crate) fn connection(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Transport(TransportError::Connection(Cause::new(err)))
    }

    /// A [`TransportError::Write`] caused by `err`.
    pub(crate) fn write(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Transport(TransportError::Write(Cause::new(err)))
    }

    /// A [`TransportError::Read`] caused by `err`.
    pub(crate) fn read(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Transport(TransportError::Read(Cause::new(err)))
    }

    /// A [`TransportError::Timeout`] of `what`.
    pub(crate) fn timeout(what: &'static str) -> Self {
        Self::Transport(TransportError::Timeout(what))
    }
}

/// How the transport failed: the detail of an [`Error::Transport`].
///
/// Every variant is sent as code 4 (spec §8): only the code reaches the peer, the detail and
/// its cause stay local. Each variant that wraps an error keeps it as its
/// [`source`](std::error::Error::source) (a [`Cause`]), so a caller can walk the chain or
/// downcast it ([`Cause::get`]); the variant's text includes the cause's, so one line of log
/// says it all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Code 4: dialling or accepting a connection failed: an unusable URL, a failed lookup,
    /// a QUIC, TLS or WebTransport handshake that failed, or an endpoint that could not bind.
    #[error("connect: {0}")]
    Connect(#[source] Cause),
    /// Code 4: the connection is gone (lost, timed out idle, or closed by either side), so
    /// no stream could be opened or accepted, or the session ended.
    #[error("connection: {0}")]
    Connection(#[source] Cause),
    /// Code 4: writing, finishing or watching a send stream failed, other than by the peer's
    /// STOP_SENDING (which carries its own code).
    #[error("write: {0}")]
    Write(#[source] Cause),
    /// Code 4: reading a stream failed, other than by the peer's RESET_STREAM (which carries
    /// its own code).
    #[error("read: {0}")]
    Read(#[source] Cause),
    /// Code 4: the peer reset or stopped a stream with a wire code that stands for no
    /// MoqTransfork code (spec §2.4).
    #[error("{action} with unknown code {wire:#x}")]
    UnknownCode {
        /// What the peer did: `"reset"` or `"stopped"`.
        action: &'static str,
        /// The code it sent.
        wire: u64,
    },
    /// Code 4: something did not happen in time; the text says what.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// Code 4: the peer reset the session stream; the session ends with code 4 whatever the
    /// stream's code was (spec §4.4), which this keeps.
    #[error("session stream reset: {0}")]
    SessionReset(#[source] Box<Error>),
    /// Code 4 received from the peer (a reset, a stop or a close): its cause stayed with it.
    #[error("reported by the peer")]
    Remote,
}

/// The underlying error of a [`TransportError`] (a quinn or web-transport-quinn error, an
/// I/O error, or a message): shared, so that [`Error`] stays cheap to clone.
///
/// It displays as the error it holds, and its [`source`](std::error::Error::source) is that
/// error's source. Two causes are equal when they display the same.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps `err`.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(err))
    }

    /// A cause that is only a message, for failures no other error describes.
    pub fn msg(text: impl Into<String>) -> Self {
        let err: Box<dyn std::error::Error + Send + Sync> = text.into().into();
        Self(Arc::from(err))
    }

    /// The error itself, to downcast (for example to a `quinn::ConnectionError`).
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// Maps a MoqTransfork code into the HTTP/3 code space used on the wire for RESET_STREAM and
/// STOP_SENDING, on both transports (spec §2.4): `base + c + floor(c / 0x1e)`.
///
/// ```
/// assert_eq!(moq_transfork::to_wire(13), 0x52e4_a40f_a8e8);
/// ```
pub fn to_wire(code: u32) -> u64 {
    let code = u64::from(code);
    WIRE_BASE + code + code / 0x1e
}

/// The inverse of [`to_wire`]: the MoqTransfork code of a received wire code, or `None` when the
/// wire code is outside the mapped range or is one of the reserved GREASE points that no code
/// maps to (spec §2.4). This is the correct inverse, not 0.8.0's lossy one.
///
/// ```
/// assert_eq!(moq_transfork::from_wire(0x52e4_a40f_a8e8), Some(13));
/// assert_eq!(moq_transfork::from_wire(0), None);
/// ```
pub fn from_wire(wire: u64) -> Option<u32> {
    let d = wire.checked_sub(WIRE_BASE)?;
    // Every 0x1f-th point is a GREASE value that no code maps to.
    if d % 0x1f == 0x1e {
        return None;
    }
    u32::try_from(d - d / 0x1f).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_pinned_to_spec_table() {
        let table = [
            (Error::Cancel, 0),
            (Error::RequiredExtension, 1),
            (Error::timeout("x"), 4),
            (Error::connection(std::io::Error::other("x")), 4),
            (Error::Decode(DecodeError::Short(1)), 5),
            (Error::Version, 9),
            (Error::UnexpectedStream, 10),
            (Error::BoundsExceeded, 11),
            (Error::Duplicate, 12),
            (Error::NotFound, 13),
            (Error::WrongSize, 14),
            (Error::ProtocolViolation, 15),
            (Error::Unauthorized, 16),
            (Error::App(0), 64),
            (Error::App(7), 71),
        ];
        for (err, code) in table {
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(Error::from_code(code).code(), code);
        }
        for unused in [2, 3, 6, 7, 8, 17, 63] {
            assert_eq!(Error::from_code(unused), Error::Unknown(unused));
        }
    }

    #[test]
    fn wire_mapping_matches_spec_vectors() {
        assert_eq!(to_wire(0), 0x52e4_a40f_a8db);
        assert_eq!(to_wire(5), 0x52e4_a40f_a8e0);
        assert_eq!(to_wire(12), 0x52e4_a40f_a8e7);
        assert_eq!(to_wire(13), 91_141_958_510_824);
        assert_eq!(to_wire(64), 0x52e4_a40f_a91d);
    }

    #[test]
    fn wire_mapping_round_trips_around_grease_points() {
        for code in (0..200).chain([u32::MAX - 1, u32::MAX]) {
            assert_eq!(from_wire(to_wire(code)), Some(code), "code {code}");
        }
        // The reserved points between mapped ranges decode to nothing.
        assert_eq!(from_wire(WIRE_BASE + 0x1e), None);
        assert_eq!(from_wire(WIRE_BASE + 0x1f + 0x1e), None);
        assert_eq!(from_wire(WIRE_BASE - 1), None);
        assert_eq!(from_wire(u64::MAX), None);
    }

    #[test]
    fn transport_errors_keep_their_cause() {
        use std::error::Error as _;

        let err = Error::write(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe"));
        assert_eq!(err.code(), 4);
        assert_eq!(err.to_string(), "transport error: write: pipe");
        let Error::Transport(TransportError::Write(cause)) = &err else {
            panic!("{err:?}");
        };
        let io = cause
            .get()
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
        // The chain: Error -> TransportError -> the cause.
        let transport = err.source().expect("the transport error");
        assert_eq!(
            transport.source().map(ToString::to_string).as_deref(),
            Some("pipe")
        );

        let reset = Error::Transport(TransportError::SessionReset(Box::new(Error::NotFound)));
        assert_eq!(
            reset.to_string(),
            "transport error: session stream reset: not found"
        );
        assert_eq!(
            Error::from_code(4),
            Error::Transport(TransportError::Remote)
        );
        assert_eq!(
            Error::timeout("setup").to_string(),
            "transport error: setup timed out"
        );
    }
}
