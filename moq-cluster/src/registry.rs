//! The root's registry of members: the `internal/origins/<node>` announcements of its
//! discovery links, offered back to every discovery link.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use moq_transfork::{Announced, AnnouncedProducer, Path, Session};

use crate::names::member_name;
use crate::origins_prefix;

/// At most this many names are registered per discovery link; a node advertises one.
pub(crate) const MAX_NAMES_PER_LINK: usize = 4;

/// At most this many distinct members are registered on a root: every member dials every
/// other, so the registry must not grow with whatever discovery links announce.
pub(crate) const MAX_MEMBERS: usize = 1024;

/// Member announcements, counted per path: a node that reconnects before its old link timed
/// out is registered twice and stays announced until both links are gone.
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    announced: AnnouncedProducer,
    counts: Arc<Mutex<HashMap<Path, usize>>>,
}

impl Registry {
    fn counts(&self) -> MutexGuard<'_, HashMap<Path, usize>> {
        crate::lock(&self.counts)
    }

    /// Every registered member, as `internal/origins/<node>` announcements.
    pub(crate) fn announced(&self) -> AnnouncedProducer {
        self.announced.clone()
    }

    /// Registers `path` once more; false (and nothing registered) when it would be a new
    /// member beyond [`MAX_MEMBERS`].
    pub(crate) fn add(&self, path: &Path) -> bool {
        let mut counts = self.counts();
        if counts.len() >= MAX_MEMBERS && !counts.contains_key(path) {
            return false;
        }
        let count = counts.entry(path.clone()).or_default();
        *count += 1;
        if *count == 1 {
            self.announced.announce(path.clone());
        }
        true
    }

    pub(crate) fn remove(&self, path: &Path) {
        let mut counts = self.counts();
        let Some(count) = counts.get_mut(path) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            counts.remove(path);
            self.announced.unannounce(path);
        }
    }

    /// Registers what a discovery link announces under `internal/origins`, until its
    /// announcements end (the link closes); then withdraws it all. Paths that do not name a
    /// member, and names beyond [`MAX_NAMES_PER_LINK`], are ignored.
    ///
    /// # Cancel safety
    /// Cancelling withdraws nothing; call it for the life of the link.
    pub(crate) async fn serve(&self, session: &Session) {
        let mut announced = session.announced(origins_prefix());
        let mut registered = HashSet::new();
        while let Some(event) = announced.next().await {
            match event {
                Announced::Active(path) => {
                    if member_name(&path).is_none() {
                        tracing::warn!("cluster: ignoring discovery announcement {path}");
                    } else if registered.len() >= MAX_NAMES_PER_LINK {
                        tracing::warn!("cluster: too many names on one discovery link: {path}");
                    } else if !registered.contains(&path) {
                        if self.add(&path) {
                            registered.insert(path);
                        } else {
                            tracing::warn!("cluster: registry full, ignoring {path}");
                        }
                    }
                }
                Announced::Ended(path) => {
                    if registered.remove(&path) {
                        self.remove(&path);
                    }
                }
            }
        }
        for path in registered {
            self.remove(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn member(name: &str) -> Path {
        origins_prefix().push(name)
    }

    #[test]
    fn member_stays_until_its_last_registration_goes() {
        let registry = Registry::default();
        let mut watch = registry.announced().subscribe();
        assert!(registry.add(&member("a:1")));
        assert!(registry.add(&member("a:1")));
        let next = |watch: &mut moq_transfork::AnnouncedConsumer| watch.next().now_or_never();
        assert_eq!(
            next(&mut watch),
            Some(Some(Announced::Active(member("a:1"))))
        );
        registry.remove(&member("a:1"));
        assert_eq!(next(&mut watch), None, "still registered once");
        registry.remove(&member("a:1"));
        assert_eq!(
            next(&mut watch),
            Some(Some(Announced::Ended(member("a:1"))))
        );
        registry.remove(&member("a:1"));
        assert_eq!(
            next(&mut watch),
            None,
            "removing an unknown name does nothing"
        );
    }

    #[test]
    fn registry_refuses_new_members_when_full() {
        let registry = Registry::default();
        for i in 0..MAX_MEMBERS {
            assert!(registry.add(&member(&format!("n{i}:1"))));
        }
        assert!(!registry.add(&member("late:1")));
        assert!(
            registry.add(&member("n0:1")),
            "a known member may register again"
        );
        registry.remove(&member("n1:1"));
        assert!(
            registry.add(&member("late:1")),
            "room again after a member left"
        );
    }
}
