//! What a token grants: a root path and, under it, what the holder may publish and subscribe to.

use serde::{Deserialize, Serialize};

/// The claims of a relay token, in the shape moq-dev's tokens use.
///
/// Paths are written with their parts separated by `/`. `root` is the prefix the token covers
/// (`""` covers everything); `put` and `get` list suffixes under `root`. An empty suffix covers
/// everything under `root`; a missing or empty list grants nothing. Matching is by whole parts:
/// `a/b` covers `a/b` and `a/b/c`, never `a/bc`.
///
/// ```
/// use moq_token::Claims;
///
/// let claims = Claims {
///     root: "live".into(),
///     put: vec!["alice".into()],
///     get: vec!["".into()],
///     ..Default::default()
/// };
/// assert!(claims.may_publish(&["live", "alice", "camera"]));
/// assert!(!claims.may_publish(&["live", "alicex"]));
/// assert!(!claims.may_publish(&["live", "bob"]));
/// assert!(claims.may_subscribe(&["live", "bob"]));
/// assert!(!claims.may_subscribe(&["other"]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The path prefix the token covers; `""` is every path.
    #[serde(default)]
    pub root: String,
    /// Suffixes under `root` the holder may announce and publish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub put: Vec<String>,
    /// Suffixes under `root` the holder may subscribe to and see announcements of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub get: Vec<String>,
    /// Grants the cluster role: relay-to-relay links and the cluster's internal paths.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
    /// Expiry, in seconds since the Unix epoch; the token is refused from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not before, in seconds since the Unix epoch; the token is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, in seconds since the Unix epoch (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

impl Claims {
    /// True when the holder may announce and publish `path` (given as its parts).
    pub fn may_publish<S: AsRef<str>>(&self, path: &[S]) -> bool {
        self.covers(&self.put, path)
    }

    /// True when the holder may subscribe to `path` and see it announced.
    pub fn may_subscribe<S: AsRef<str>>(&self, path: &[S]) -> bool {
        self.covers(&self.get, path)
    }

    fn covers<S: AsRef<str>>(&self, suffixes: &[String], path: &[S]) -> bool {
        let Some(rest) = strip_parts(path, &self.root) else {
            return false;
        };
        suffixes
            .iter()
            .any(|suffix| strip_parts(rest, suffix).is_some())
    }
}

/// The parts of `path` after the parts of `prefix` (written with `/`), or `None` when `path`
/// does not start with all of them. Empty parts of `prefix` (from `""`, or a leading, trailing
/// or doubled `/`) are ignored.
fn strip_parts<'a, S: AsRef<str>>(path: &'a [S], prefix: &str) -> Option<&'a [S]> {
    let mut rest = path;
    for part in prefix.split('/').filter(|part| !part.is_empty()) {
        let (first, tail) = rest.split_first()?;
        if first.as_ref() != part {
            return None;
        }
        rest = tail;
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(root: &str, put: &[&str], get: &[&str]) -> Claims {
        Claims {
            root: root.into(),
            put: put.iter().map(|s| s.to_string()).collect(),
            get: get.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn empty_root_and_empty_suffix_cover_everything() {
        let all = claims("", &[""], &[""]);
        assert!(all.may_publish(&["a", "b"]));
        assert!(all.may_subscribe::<&str>(&[]));
    }

    #[test]
    fn missing_lists_grant_nothing() {
        let none = claims("", &[], &[]);
        assert!(!none.may_publish(&["a"]));
        assert!(!none.may_subscribe::<&str>(&[]));
    }

    #[test]
    fn matching_is_by_whole_parts() {
        let c = claims("a/b", &["c"], &[""]);
        assert!(c.may_subscribe(&["a", "b"]));
        assert!(c.may_subscribe(&["a", "b", "x"]));
        assert!(!c.may_subscribe(&["a", "bc"]));
        assert!(!c.may_subscribe(&["a"]));
        assert!(c.may_publish(&["a", "b", "c"]));
        assert!(c.may_publish(&["a", "b", "c", "d"]));
        assert!(!c.may_publish(&["a", "b", "cd"]));
        assert!(!c.may_publish(&["a", "b"]));
    }

    #[test]
    fn slashes_at_the_edges_do_not_matter() {
        let c = claims("/live/", &["/alice"], &[]);
        assert!(c.may_publish(&["live", "alice"]));
    }

    #[test]
    fn claims_use_moq_dev_names_and_skip_empty_fields() {
        let c = Claims {
            exp: Some(10),
            ..claims("r", &["p"], &[])
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"root": "r", "put": ["p"], "exp": 10})
        );
        let back: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
