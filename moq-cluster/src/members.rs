//! Who is in the cluster, as this relay last heard it, and when a link to a member is worth
//! keeping. Pure state: the caller starts and stops the links.

use std::collections::HashMap;

/// The members this relay keeps a link to, each with the handle `H` that stops its link.
///
/// A member is *confirmed* while the current discovery session (the root link, or the root's
/// own registry on the root) announces it. When the root link is lost, every member stays, so
/// media between members keeps flowing; when a new root link comes up, members become
/// unconfirmed until the root announces them again. A failed link is redialed while its member
/// is confirmed, or while the root is unreachable (nobody can tell us it left); otherwise the
/// member is forgotten.
#[derive(Debug)]
pub(crate) struct Membership<H> {
    root_up: bool,
    members: HashMap<String, Member<H>>,
    next_generation: u64,
}

#[derive(Debug)]
struct Member<H> {
    /// Tells this link from an earlier one to a member of the same name.
    generation: u64,
    confirmed: bool,
    handle: H,
}

impl<H> Membership<H> {
    /// No members yet; `root_up` is true on the root, which is its own discovery source.
    pub(crate) fn new(root_up: bool) -> Self {
        Self {
            root_up,
            members: HashMap::new(),
            next_generation: 0,
        }
    }

    /// The root announced `name`. For a member not linked yet, `start` is called with the new
    /// link's generation and returns its handle; true in that case.
    pub(crate) fn join(&mut self, name: &str, start: impl FnOnce(u64) -> H) -> bool {
        if let Some(member) = self.members.get_mut(name) {
            member.confirmed = true;
            return false;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let handle = start(generation);
        self.members.insert(
            name.to_owned(),
            Member {
                generation,
                confirmed: true,
                handle,
            },
        );
        true
    }

    /// The root says `name` left: returns the handle of its link, to stop it.
    pub(crate) fn leave(&mut self, name: &str) -> Option<H> {
        self.members.remove(name).map(|member| member.handle)
    }

    /// A new root link is up: the root will announce who is still there.
    pub(crate) fn resync(&mut self) {
        self.root_up = true;
        for member in self.members.values_mut() {
            member.confirmed = false;
        }
    }

    /// The root link is down: keep every member and its link.
    pub(crate) fn root_lost(&mut self) {
        self.root_up = false;
    }

    /// The link of generation `generation` to `name` failed: true if it should be redialed.
    /// Otherwise the member is forgotten (if that link is still its current one).
    pub(crate) fn keep(&mut self, name: &str, generation: u64) -> bool {
        let Some(member) = self.members.get(name) else {
            return false;
        };
        if member.generation != generation {
            return false;
        }
        if member.confirmed || !self.root_up {
            return true;
        }
        self.members.remove(name);
        false
    }

    /// How many members are known.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(membership: &mut Membership<u64>, name: &str) -> u64 {
        let mut started = None;
        membership.join(name, |generation| {
            started = Some(generation);
            generation
        });
        started.expect("a new link")
    }

    #[test]
    fn join_starts_one_link_per_member() {
        let mut membership = Membership::new(true);
        joined(&mut membership, "a:1");
        assert!(!membership.join("a:1", |_| unreachable!("already linked")));
        assert_eq!(membership.len(), 1);
    }

    #[test]
    fn confirmed_member_is_redialed_until_it_leaves() {
        let mut membership = Membership::new(true);
        let generation = joined(&mut membership, "a:1");
        assert!(membership.keep("a:1", generation));
        assert_eq!(membership.leave("a:1"), Some(generation));
        assert!(!membership.keep("a:1", generation));
    }

    #[test]
    fn stale_link_ends_when_a_newer_one_exists() {
        let mut membership = Membership::new(true);
        let old = joined(&mut membership, "a:1");
        membership.leave("a:1");
        let new = joined(&mut membership, "a:1");
        assert!(!membership.keep("a:1", old));
        assert!(membership.keep("a:1", new));
    }

    #[test]
    fn root_loss_keeps_every_member_and_redials() {
        let mut membership = Membership::new(true);
        let generation = joined(&mut membership, "a:1");
        membership.resync();
        membership.root_lost();
        assert!(membership.keep("a:1", generation), "no one can say it left");
        assert_eq!(membership.len(), 1);
    }

    #[test]
    fn after_resync_only_reannounced_members_are_redialed() {
        let mut membership = Membership::new(true);
        let a = joined(&mut membership, "a:1");
        let b = joined(&mut membership, "b:1");
        membership.root_lost();
        membership.resync();
        assert!(!membership.join("a:1", |_| unreachable!("still linked")));
        assert!(membership.keep("a:1", a));
        assert!(!membership.keep("b:1", b), "the new root does not know b");
        assert_eq!(membership.len(), 1);
    }
}
