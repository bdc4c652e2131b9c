//! The [`Path`] encoding: a part count, then each part as a string (spec §3).

use bytes::{Buf, BufMut};

use super::limits::{MAX_PATH_BYTES, MAX_PATH_PARTS};
use super::primitive::decode_len;
use super::{Decode, DecodeError, Encode};
use crate::model::PathBuilder;
use crate::Path;

/// A path is its part count as a varint, then each part as a string. The empty path (count 0)
/// is valid.
///
/// The encoder writes any path; the decoder enforces [`MAX_PATH_PARTS`] and [`MAX_PATH_BYTES`].
impl Encode for Path {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.len().encode(buf);
        for part in self.parts() {
            part.encode(buf);
        }
    }
}

impl Decode for Path {
    /// # Errors
    /// [`DecodeError::TooLarge`] with `"path parts"` above [`MAX_PATH_PARTS`] parts, or with
    /// `"path bytes"` when the parts add up to more than [`MAX_PATH_BYTES`]. Both are detected
    /// from the lengths alone, before the bytes are read or allocated.
    fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let count = usize::decode(buf)?;
        if count > MAX_PATH_PARTS {
            return Err(DecodeError::TooLarge("path parts"));
        }
        // One scratch buffer for the parts, one buffer for the path: an announced path costs
        // the relay one lasting allocation and little garbage around it.
        let mut path = PathBuilder::default();
        let mut part = Vec::new();
        let mut total = 0usize;
        for _ in 0..count {
            // `total` never exceeds MAX_PATH_BYTES, so the budget cannot underflow.
            let budget = MAX_PATH_BYTES.saturating_sub(total);
            let len = decode_len(buf, budget, "path bytes")?;
            part.clear();
            part.resize(len, 0);
            buf.copy_to_slice(&mut part);
            path.push(std::str::from_utf8(&part).map_err(|_| DecodeError::InvalidUtf8)?);
            total = total.saturating_add(len);
        }
        Ok(path.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::test_util::{any_path, assert_golden, decode_hex, encode, round_trip};
    use proptest::prelude::*;

    #[test]
    fn golden_paths() {
        assert_golden("00", &Path::new());
        assert_golden("0105636c6f636b", &Path::from_iter(["clock"]));
        assert_golden(
            "0208696e7465726e616c076f726967696e73",
            &Path::from_iter(["internal", "origins"]),
        );
        assert_golden("020000", &Path::from_iter(["", ""]));
    }

    #[test]
    fn rejects_too_many_parts() {
        let max = Path::from_iter(std::iter::repeat_n("a", MAX_PATH_PARTS));
        assert_eq!(round_trip(&max), Ok(max));

        let over = Path::from_iter(std::iter::repeat_n("a", MAX_PATH_PARTS + 1));
        let mut bytes = encode(&over);
        assert_eq!(
            Path::decode(&mut bytes.as_slice()),
            Err(DecodeError::TooLarge("path parts"))
        );
        // The count alone is enough to reject it.
        bytes.truncate(1);
        assert_eq!(
            Path::decode(&mut bytes.as_slice()),
            Err(DecodeError::TooLarge("path parts"))
        );
        assert_eq!(
            decode_hex::<Path>("ffffffffffffffff"),
            Err(DecodeError::TooLarge("path parts"))
        );
    }

    #[test]
    fn rejects_too_many_bytes() {
        let half = "x".repeat(MAX_PATH_BYTES / 2);
        let max = Path::from_iter([half.clone(), half.clone()]);
        assert_eq!(round_trip(&max), Ok(max));

        let over = Path::from_iter([half.clone(), half, "y".to_string()]);
        assert_eq!(round_trip(&over), Err(DecodeError::TooLarge("path bytes")));

        let single = Path::from_iter(["z".repeat(MAX_PATH_BYTES + 1)]);
        let bytes = encode(&single);
        assert_eq!(
            Path::decode(&mut bytes.as_slice()),
            Err(DecodeError::TooLarge("path bytes"))
        );
        // Rejected from the length prefix, before the 4097 bytes arrive.
        assert_eq!(
            Path::decode(&mut &bytes[..4]),
            Err(DecodeError::TooLarge("path bytes"))
        );
    }

    #[test]
    fn rejects_invalid_utf8_part() {
        assert_eq!(decode_hex::<Path>("0101ff"), Err(DecodeError::InvalidUtf8));
    }

    proptest! {
        #[test]
        fn paths_round_trip(path in any_path()) {
            prop_assert_eq!(round_trip(&path), Ok(path));
        }
    }
}
