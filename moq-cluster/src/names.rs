//! Member names (`HOST[:PORT]`), the paths that advertise them, and the URLs that reach them.

use moq_transfork::Path;
use url::Url;

use crate::{origins_prefix, LinkKind};

/// The path under which `node` advertises itself: `internal/origins/<node>`.
pub fn origin_path(node: &str) -> Path {
    origins_prefix().push(node)
}

/// The member a discovery path names: the one part after `internal/origins`.
pub fn member_name(path: &Path) -> Option<&str> {
    let prefix = origins_prefix();
    if !path.has_prefix(&prefix) {
        return None;
    }
    let mut rest = path.parts().skip(prefix.len());
    match (rest.next(), rest.next()) {
        (Some(name), None) if !name.is_empty() => Some(name),
        _ => None,
    }
}

/// Why a member name cannot be dialed.
#[derive(Debug, thiserror::Error)]
#[error("invalid cluster name {name:?}: {reason}; expected HOST[:PORT]")]
pub struct InvalidName {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The URL of a link of `kind` to the relay named `name` (`HOST[:PORT]`, port 443 if left out):
/// `https://HOST:PORT/cluster/...`. Cluster links are WebTransport, whose CONNECT path tells
/// the serving relay what kind of link it is.
///
/// # Errors
/// [`InvalidName`] unless `name` is exactly a host with an optional port.
pub fn link_url(name: &str, kind: LinkKind) -> Result<Url, InvalidName> {
    let invalid = |reason: &str| InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name.contains(['/', '?', '#', '@', '\\']) {
        return Err(invalid("not a host"));
    }
    let url = Url::parse(&format!("https://{name}{}", kind.url_path()))
        .map_err(|err| invalid(&err.to_string()))?;
    if url.host().is_none() || url.path() != kind.url_path() {
        return Err(invalid("not a host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_name_is_the_single_part_after_the_prefix() {
        assert_eq!(
            member_name(&origin_path("10.0.0.1:4443")),
            Some("10.0.0.1:4443")
        );
        assert_eq!(member_name(&origins_prefix()), None);
        assert_eq!(member_name(&origin_path("a").push("b")), None);
        assert_eq!(member_name(&origin_path("")), None);
        assert_eq!(
            member_name(&Path::from_iter(["internal", "other", "a"])),
            None
        );
    }

    #[test]
    fn link_url_accepts_hosts_with_optional_port() {
        let url = link_url("relay.example:4443", LinkKind::Peer).unwrap();
        assert_eq!(url.as_str(), "https://relay.example:4443/cluster/peer");
        let url = link_url("127.0.0.1", LinkKind::Discovery).unwrap();
        assert_eq!(url.as_str(), "https://127.0.0.1/cluster/discovery");
        assert!(link_url("[::1]:4443", LinkKind::Peer).is_ok());
    }

    #[test]
    fn link_url_rejects_anything_but_a_host() {
        for name in [
            "",
            "a/b",
            "a:b:c",
            "user@host",
            "host?x",
            "host#y",
            "https://host",
        ] {
            assert!(link_url(name, LinkKind::Peer).is_err(), "{name:?} accepted");
        }
    }
}
