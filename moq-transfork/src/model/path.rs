//! Track names: an ordered list of UTF-8 parts, shared rather than copied.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::iter::FusedIterator;
use std::sync::Arc;

/// The name of a track: an ordered list of UTF-8 parts, such as `["demo", "bbb", "video"]`.
///
/// Prefixes match on whole parts: `["a"]` is a prefix of `["a", "b"]` but not of `["ab"]`.
/// Ordering and equality are lexicographic over the parts (spec §9).
///
/// A path is one shared allocation: cloning it copies a pointer, so a relay that keeps an
/// announced path in several tables and hands it to every watcher holds its bytes once.
///
/// ```
/// use moq_transfork::Path;
/// let path = Path::from_iter(["demo", "bbb", "video"]);
/// assert!(path.has_prefix(&Path::from_iter(["demo"])));
/// assert!(!Path::from_iter(["demox"]).has_prefix(&Path::from_iter(["demo"])));
/// assert_eq!(path.strip_prefix(&Path::from_iter(["demo"])), Some(Path::from_iter(["bbb", "video"])));
/// assert_eq!(path.parts().collect::<Vec<_>>(), ["demo", "bbb", "video"]);
/// assert_eq!(path.to_string(), "demo/bbb/video");
/// ```
#[derive(Clone)]
pub struct Path {
    /// Every part as a netstring: its byte length in decimal, `:`, then its bytes. The encoding
    /// is canonical and prefix-free, so equal paths have equal text, and a path's text starts
    /// with a prefix's text exactly when the prefix's parts are its first parts.
    text: Arc<str>,
}

impl Path {
    /// The empty path, which is a prefix of every path.
    pub fn new() -> Self {
        Self {
            text: Arc::from(""),
        }
    }

    /// Appends one part.
    pub fn push(self, part: impl AsRef<str>) -> Self {
        let mut text = String::from(&*self.text);
        push_part(&mut text, part.as_ref());
        Self { text: text.into() }
    }

    /// Appends every part of `other`.
    pub fn append(self, other: &Self) -> Self {
        if self.is_empty() {
            return other.clone();
        }
        if other.is_empty() {
            return self;
        }
        Self {
            text: format!("{}{}", self.text, other.text).into(),
        }
    }

    /// The parts, in order.
    pub fn parts(&self) -> Parts<'_> {
        Parts { rest: &self.text }
    }

    /// The number of parts.
    pub fn len(&self) -> usize {
        self.parts().count()
    }

    /// True for the empty path.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// True when the first parts of `self` are exactly the parts of `prefix`.
    pub fn has_prefix(&self, prefix: &Self) -> bool {
        self.text.starts_with(&*prefix.text)
    }

    /// The parts after `prefix`, or `None` when `prefix` is not a prefix of `self`. Stripping
    /// the empty path shares `self` rather than copying it.
    pub fn strip_prefix(&self, prefix: &Self) -> Option<Self> {
        if prefix.is_empty() {
            return Some(self.clone());
        }
        let rest = self.text.strip_prefix(&*prefix.text)?;
        Some(Self { text: rest.into() })
    }

    /// The total length in bytes of all parts (what [`limits::MAX_PATH_BYTES`] bounds).
    ///
    /// [`limits::MAX_PATH_BYTES`]: crate::coding::limits::MAX_PATH_BYTES
    pub fn byte_len(&self) -> usize {
        self.parts().map(str::len).sum()
    }
}

/// Builds a [`Path`] part by part in one buffer (the decoder's way: no string per part).
#[derive(Debug, Default)]
pub(crate) struct PathBuilder {
    text: String,
}

impl PathBuilder {
    /// Appends one part.
    pub(crate) fn push(&mut self, part: &str) {
        push_part(&mut self.text, part);
    }

    /// The path of the parts pushed so far.
    pub(crate) fn finish(self) -> Path {
        Path {
            text: self.text.into(),
        }
    }
}

/// Appends `part` to `text` as a netstring.
fn push_part(text: &mut String, part: &str) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(text, "{}:{part}", part.len());
}

/// The part of the netstring `text` that starts at byte `at`: the byte range of its contents.
///
/// The text is built only by `push_part`, so this never fails; if it did, the caller would
/// see the path end early rather than panic. Hand-rolled, because paths are compared on every
/// lookup in the ordered sets of announcements.
fn part_at(text: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let mut len = 0usize;
    let mut i = at;
    loop {
        let byte = *text.get(i)?;
        i += 1;
        if byte == b':' {
            let end = i.checked_add(len)?;
            return (end <= text.len()).then_some(i..end);
        }
        let digit = usize::from(byte.checked_sub(b'0')?);
        len = len.checked_mul(10)?.checked_add(digit)?;
    }
}

/// The parts of a [`Path`], in order; see [`Path::parts`].
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let range = part_at(self.rest.as_bytes(), 0)?;
        let part = self.rest.get(range.clone())?;
        self.rest = self.rest.get(range.end..)?;
        Some(part)
    }
}

impl FusedIterator for Parts<'_> {}

impl Default for Path {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        // Canonical text: equal parts, equal text.
        self.text == other.text
    }
}

impl Eq for Path {}

impl Hash for Path {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for Path {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Path {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.text.as_bytes(), other.text.as_bytes());
        if Arc::ptr_eq(&self.text, &other.text) || a == b {
            return Ordering::Equal;
        }
        // Part by part; each pair of parts compares as byte strings, which for UTF-8 is the
        // order of `str`.
        let (mut i, mut j) = (0, 0);
        loop {
            match (part_at(a, i), part_at(b, j)) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => match a.get(x.clone()).cmp(&b.get(y.clone())) {
                    Ordering::Equal => (i, j) = (x.end, y.end),
                    order => return order,
                },
            }
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for Path {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut builder = PathBuilder::default();
        for part in iter {
            builder.push(part.as_ref());
        }
        builder.finish()
    }
}

impl From<Vec<String>> for Path {
    fn from(parts: Vec<String>) -> Self {
        Self::from_iter(parts)
    }
}

impl fmt::Display for Path {
    /// Parts joined with `/`, for logs; not an encoding (parts may themselves contain `/`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.parts()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash(path: &Path) -> u64 {
        let mut hasher = DefaultHasher::new();
        path.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn prefix_matches_whole_parts_only() {
        let ab = Path::from_iter(["a", "b"]);
        assert!(ab.has_prefix(&Path::new()));
        assert!(ab.has_prefix(&Path::from_iter(["a"])));
        assert!(ab.has_prefix(&ab));
        assert!(!Path::from_iter(["ab"]).has_prefix(&Path::from_iter(["a"])));
        assert!(!Path::from_iter(["a"]).has_prefix(&ab));
        assert!(!Path::from_iter(["a1"]).has_prefix(&Path::from_iter(["a"])));
        // A long part whose length starts with a short part's length.
        let long = "x".repeat(12);
        assert!(!Path::from_iter([long.as_str()]).has_prefix(&Path::from_iter(["x"])));
        assert_eq!(ab.strip_prefix(&ab), Some(Path::new()));
        assert_eq!(ab.strip_prefix(&Path::from_iter(["b"])), None);
    }

    #[test]
    fn parts_may_hold_any_text() {
        let parts = ["", "a:b", "12:x", "/", "é", ""];
        let path = Path::from_iter(parts);
        assert_eq!(path.parts().collect::<Vec<_>>(), parts);
        assert_eq!(path.len(), 6);
        assert_eq!(
            path.byte_len(),
            parts.iter().map(|p| p.len()).sum::<usize>()
        );
        assert_ne!(Path::from_iter([""]), Path::new());
        assert_ne!(Path::from_iter(["a", "b"]), Path::from_iter(["ab"]));
        assert_ne!(Path::from_iter(["a:b"]), Path::from_iter(["a", "b"]));
    }

    #[test]
    fn building_equals_collecting() {
        let built = Path::new()
            .push("a")
            .push("b")
            .append(&Path::from_iter(["c"]));
        let collected = Path::from_iter(["a", "b", "c"]);
        assert_eq!(built, collected);
        assert_eq!(hash(&built), hash(&collected));
        assert_eq!(built.cmp(&collected), Ordering::Equal);
        assert_eq!(Path::from(vec!["a".to_string()]), Path::from_iter(["a"]));
        assert_eq!(Path::new().append(&Path::new()), Path::default());
    }

    #[test]
    fn clones_share_the_text() {
        let path = Path::from_iter(["shared"]);
        let clone = path.clone();
        assert!(Arc::ptr_eq(&path.text, &clone.text));
        let whole = path.strip_prefix(&Path::new()).unwrap();
        assert!(Arc::ptr_eq(&path.text, &whole.text));
    }

    #[test]
    fn orders_lexicographically_over_parts() {
        let mut paths = vec![
            Path::from_iter(["b"]),
            Path::from_iter(["a", "z"]),
            Path::from_iter(["a"]),
            Path::from_iter(["aa"]),
            Path::from_iter(["a".repeat(10)]),
            Path::new(),
        ];
        paths.sort();
        assert_eq!(
            paths,
            vec![
                Path::new(),
                Path::from_iter(["a"]),
                Path::from_iter(["a", "z"]),
                Path::from_iter(["aa"]),
                Path::from_iter(["a".repeat(10)]),
                Path::from_iter(["b"])
            ]
        );
    }

    proptest::proptest! {
        /// Equality, order, hashing and prefixes agree with those of the list of parts.
        #[test]
        fn agrees_with_a_list_of_parts(
            a in proptest::collection::vec("[ab:0-9]{0,3}|x{9,12}", 0..4),
            b in proptest::collection::vec("[ab:0-9]{0,3}|x{9,12}", 0..4),
        ) {
            let (pa, pb) = (Path::from_iter(&a), Path::from_iter(&b));
            proptest::prop_assert_eq!(pa.parts().collect::<Vec<_>>(), a.iter().map(String::as_str).collect::<Vec<_>>());
            proptest::prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            proptest::prop_assert_eq!(pa == pb, a == b);
            if a == b {
                proptest::prop_assert_eq!(hash(&pa), hash(&pb));
            }
            proptest::prop_assert_eq!(pa.has_prefix(&pb), a.starts_with(&b));
            let rest = a.strip_prefix(b.as_slice()).map(Path::from_iter);
            proptest::prop_assert_eq!(pa.strip_prefix(&pb), rest);
        }
    }

    #[test]
    fn displays_joined_and_debugs_as_a_list() {
        let path = Path::from_iter(["a", "b c"]);
        assert_eq!(path.to_string(), "a/b c");
        assert_eq!(format!("{path:?}"), r#"["a", "b c"]"#);
        assert_eq!(Path::new().to_string(), "");
    }
}
