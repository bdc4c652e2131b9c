//! Track names: an ordered list of UTF-8 parts.

use std::fmt;

/// The name of a track: an ordered list of UTF-8 parts, such as `["demo", "bbb", "video"]`.
///
/// Prefixes match on whole parts: `["a"]` is a prefix of `["a", "b"]` but not of `["ab"]`.
/// Ordering and equality are lexicographic over the parts (spec §9).
///
/// ```
/// use moq_transfork::Path;
/// let path = Path::from_iter(["demo", "bbb", "video"]);
/// assert!(path.has_prefix(&Path::from_iter(["demo"])));
/// assert!(!Path::from_iter(["demox"]).has_prefix(&Path::from_iter(["demo"])));
/// assert_eq!(path.strip_prefix(&Path::from_iter(["demo"])), Some(Path::from_iter(["bbb", "video"])));
/// assert_eq!(path.to_string(), "demo/bbb/video");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path {
    parts: Vec<String>,
}

impl Path {
    /// The empty path, which is a prefix of every path.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one part.
    pub fn push(mut self, part: impl Into<String>) -> Self {
        self.parts.push(part.into());
        self
    }

    /// Appends every part of `other`.
    pub fn append(mut self, other: &Self) -> Self {
        self.parts.extend(other.parts.iter().cloned());
        self
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// The number of parts.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// True for the empty path.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// True when the first parts of `self` are exactly the parts of `prefix`.
    pub fn has_prefix(&self, prefix: &Self) -> bool {
        self.parts.starts_with(&prefix.parts)
    }

    /// The parts after `prefix`, or `None` when `prefix` is not a prefix of `self`.
    pub fn strip_prefix(&self, prefix: &Self) -> Option<Self> {
        let rest = self.parts.strip_prefix(prefix.parts.as_slice())?;
        Some(Self {
            parts: rest.to_vec(),
        })
    }

    /// The total length in bytes of all parts (what [`limits::MAX_PATH_BYTES`] bounds).
    ///
    /// [`limits::MAX_PATH_BYTES`]: crate::coding::limits::MAX_PATH_BYTES
    pub fn byte_len(&self) -> usize {
        self.parts.iter().map(String::len).sum()
    }
}

impl<S: Into<String>> FromIterator<S> for Path {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self {
            parts: iter.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Vec<String>> for Path {
    fn from(parts: Vec<String>) -> Self {
        Self { parts }
    }
}

impl fmt::Display for Path {
    /// Parts joined with `/`, for logs; not an encoding (parts may themselves contain `/`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join("/"))
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.parts).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_whole_parts_only() {
        let ab = Path::from_iter(["a", "b"]);
        assert!(ab.has_prefix(&Path::new()));
        assert!(ab.has_prefix(&Path::from_iter(["a"])));
        assert!(ab.has_prefix(&ab));
        assert!(!Path::from_iter(["ab"]).has_prefix(&Path::from_iter(["a"])));
        assert!(!Path::from_iter(["a"]).has_prefix(&ab));
        assert_eq!(ab.strip_prefix(&ab), Some(Path::new()));
    }

    #[test]
    fn orders_lexicographically_over_parts() {
        let mut paths = vec![
            Path::from_iter(["b"]),
            Path::from_iter(["a", "z"]),
            Path::from_iter(["a"]),
        ];
        paths.sort();
        assert_eq!(
            paths,
            vec![
                Path::from_iter(["a"]),
                Path::from_iter(["a", "z"]),
                Path::from_iter(["b"])
            ]
        );
    }
}
