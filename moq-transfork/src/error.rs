//! The one error type of the crate, with the wire code of every variant (spec §8).

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
    /// Code 4: the transport failed (connection lost, stream stopped or reset by the peer).
    #[error("transport error: {0}")]
    Transport(String),
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
            4 => Self::Transport("reset by peer".into()),
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

    /// Builds a [`Error::Transport`] from anything displayable.
    pub(crate) fn transport(err: impl std::fmt::Display) -> Self {
        Self::Transport(err.to_string())
    }
}

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
            (Error::Transport("x".into()), 4),
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
}
