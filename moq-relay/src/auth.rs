//! Who may publish and subscribe to what (docs/auth.md): each client's token is verified
//! against the `--auth-key`s, and `--auth-public` prefixes open paths to clients without one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use moq_token::{Claims, KeySet};
use moq_transfork::{Error, Path, Router, Track, TrackConsumer};

/// The first part of the cluster's internal paths (member advertisements), which only a token
/// with the cluster role may publish, subscribe to or see announced.
const INTERNAL_PREFIX: &str = "internal";

/// The longest key id written to logs.
const MAX_LOGGED_KID: usize = 16;

/// The relay's verification keys and public prefixes. Without keys the relay is open.
#[derive(Debug)]
pub(crate) struct Auth {
    keys: KeySet,
    /// The public prefixes, as claims that grant `put` and `get` under each.
    public: Arc<Claims>,
}

/// What one session may do: its token's claims, and the public prefixes.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    claims: Option<Claims>,
    kid: Option<String>,
    public: Arc<Claims>,
}

impl Auth {
    /// Loads `keys` (JWK files); `None` when there are none, and the relay is open.
    pub(crate) fn load(keys: &[PathBuf], public: &[String]) -> anyhow::Result<Option<Self>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let mut set = KeySet::default();
        for path in keys {
            set.add_file(path)
                .with_context(|| format!("loading --auth-key {}", path.display()))?;
        }
        Ok(Some(Self {
            keys: set,
            public: Arc::new(Claims {
                put: public.to_vec(),
                get: public.to_vec(),
                ..Default::default()
            }),
        }))
    }

    /// True when `token` verifies and grants the cluster role, which a cluster link needs.
    pub(crate) fn is_cluster(&self, token: Option<&str>) -> bool {
        match token.map(|token| self.keys.verify(token)) {
            Some(Ok(verified)) if verified.claims.cluster => true,
            Some(Ok(_)) => {
                tracing::info!("cluster link refused: the token has no cluster role");
                false
            }
            Some(Err(err)) => {
                tracing::info!(%err, "cluster link refused");
                false
            }
            None => {
                tracing::info!("cluster link refused: no token");
                false
            }
        }
    }

    /// The scope of a client that presented `token`: its claims when the token verifies, the
    /// public prefixes alone when it presented none and some are configured.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for a token that does not verify (the reason is logged, never
    /// the token), and for a missing token when no prefix is public.
    pub(crate) fn scope(&self, token: Option<&str>) -> Result<Scope, Error> {
        let verified = match token {
            Some(token) => match self.keys.verify(token) {
                Ok(verified) => Some(verified),
                Err(err) => {
                    tracing::info!(%err, "token refused");
                    return Err(Error::Unauthorized);
                }
            },
            None if self.public.get.is_empty() => {
                tracing::info!("no token, and no public prefix");
                return Err(Error::Unauthorized);
            }
            None => None,
        };
        let (claims, kid) = match verified {
            Some(verified) => (Some(verified.claims), verified.kid),
            None => (None, None),
        };
        Ok(Scope {
            claims,
            kid,
            public: self.public.clone(),
        })
    }
}

impl Scope {
    /// True for the cluster's internal paths when the token lacks the cluster role.
    fn reserved(&self, path: &Path) -> bool {
        path.parts().next() == Some(INTERNAL_PREFIX)
            && !self.claims.as_ref().is_some_and(|claims| claims.cluster)
    }

    /// True when the session may announce and publish `path`.
    pub(crate) fn may_publish(&self, path: &Path) -> bool {
        if self.reserved(path) {
            return false;
        }
        let parts: Vec<&str> = path.parts().collect();
        self.public.may_publish(&parts)
            || self
                .claims
                .as_ref()
                .is_some_and(|claims| claims.may_publish(&parts))
    }

    /// True when the session may subscribe to `path` and see it announced.
    pub(crate) fn may_subscribe(&self, path: &Path) -> bool {
        if self.reserved(path) {
            return false;
        }
        let parts: Vec<&str> = path.parts().collect();
        self.public.may_subscribe(&parts)
            || self
                .claims
                .as_ref()
                .is_some_and(|claims| claims.may_subscribe(&parts))
    }

    /// The token's `root`, for the session's span; `None` without a token.
    pub(crate) fn root(&self) -> Option<&str> {
        self.claims.as_ref().map(|claims| claims.root.as_str())
    }

    /// The id of the key that verified the token, shortened, for the session's span.
    pub(crate) fn kid(&self) -> Option<&str> {
        let kid = self.kid.as_deref()?;
        let end = (0..=kid.len().min(MAX_LOGGED_KID))
            .rev()
            .find(|&end| kid.is_char_boundary(end))
            .unwrap_or(0);
        Some(&kid[..end])
    }

    /// How long until the token expires; `None` when it never does (or there is none).
    pub(crate) fn expires_in(&self) -> Option<Duration> {
        // An `exp` too far to represent never comes.
        let exp = UNIX_EPOCH.checked_add(Duration::from_secs(self.claims.as_ref()?.exp?))?;
        Some(
            exp.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// A router that answers NotFound, exactly as for an unknown track, for paths outside the
/// session's `get` scope, so nothing leaks about what exists.
pub(crate) struct ScopedRouter {
    pub(crate) inner: Arc<dyn Router>,
    pub(crate) scope: Scope,
}

impl Router for ScopedRouter {
    fn route(&self, track: &Track) -> Result<TrackConsumer, Error> {
        if !self.scope.may_subscribe(&track.path) {
            return Err(Error::NotFound);
        }
        self.inner.route(track)
    }

    fn cached(&self, path: &Path) -> Result<TrackConsumer, Error> {
        if !self.scope.may_subscribe(path) {
            return Err(Error::NotFound);
        }
        self.inner.cached(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(claims: Option<Claims>, public: &[&str]) -> Scope {
        let public: Vec<String> = public.iter().map(|p| p.to_string()).collect();
        Scope {
            claims,
            kid: Some("a-rather-long-key-identifier".into()),
            public: Arc::new(Claims {
                put: public.clone(),
                get: public,
                ..Default::default()
            }),
        }
    }

    fn path(text: &str) -> Path {
        Path::from_iter(text.split('/'))
    }

    #[test]
    fn public_prefixes_grant_both_and_add_to_the_token() {
        let claims = Claims {
            root: "live".into(),
            get: vec!["".into()],
            ..Default::default()
        };
        let s = scope(Some(claims), &["open"]);
        assert!(s.may_subscribe(&path("live/x")));
        assert!(!s.may_publish(&path("live/x")));
        assert!(s.may_publish(&path("open/x")));
        assert!(s.may_subscribe(&path("open")));
        assert!(!s.may_subscribe(&path("openx")));
        let tokenless = scope(None, &[]);
        assert!(!tokenless.may_subscribe(&path("live")));
        assert_eq!(tokenless.expires_in(), None);
    }

    #[test]
    fn internal_paths_need_the_cluster_role() {
        let admin = Claims {
            put: vec!["".into()],
            get: vec!["".into()],
            ..Default::default()
        };
        let s = scope(Some(admin.clone()), &["internal"]);
        assert!(!s.may_publish(&path("internal/origins/x")));
        assert!(!s.may_subscribe(&path("internal")));
        assert!(s.may_subscribe(&path("internalx")));
        let member = scope(
            Some(Claims {
                cluster: true,
                ..admin
            }),
            &[],
        );
        assert!(member.may_publish(&path("internal/origins/x")));
    }

    #[test]
    fn an_exp_too_far_to_represent_never_comes() {
        let forever = Claims {
            exp: Some(u64::MAX),
            ..Default::default()
        };
        assert_eq!(scope(Some(forever), &[]).expires_in(), None);
        let past = Claims {
            exp: Some(1),
            ..Default::default()
        };
        assert_eq!(scope(Some(past), &[]).expires_in(), Some(Duration::ZERO));
    }

    #[test]
    fn the_logged_kid_is_short() {
        assert_eq!(scope(None, &[]).kid(), Some("a-rather-long-ke"));
    }
}
