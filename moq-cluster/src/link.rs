//! The links this relay dials: one discovery link to the root, one peer link per member.
//! Both are redialed with backoff when they drop.

use futures::FutureExt;
use moq_transfork::{Announced, Cause, Error, Path, Session, Track, TransportError};
use tokio::sync::watch;
use url::Url;

use crate::backoff::Backoff;
use crate::{member_name, origin_path, origins_prefix, Cluster};

impl Cluster {
    /// On a member: keeps a discovery link to the root at `root`, redialed with backoff.
    pub(crate) async fn discover_through(&self, root: &Url) {
        let mut withdrawn = self.inner.withdrawn.subscribe();
        let mut backoff = Backoff::new();
        while !*withdrawn.borrow() {
            let dialed = tokio::select! {
                dialed = self.dial(root) => dialed,
                _ = withdrawn.wait_for(|withdrawn| *withdrawn) => return,
            };
            match dialed {
                Ok(session) => {
                    backoff.reset();
                    self.stats().set_root_reached();
                    tracing::info!("cluster: root link up ({root})");
                    let reason = self.discover(&session, &mut withdrawn).await;
                    // Closing the link is what withdraws this relay: the root forgets it.
                    session.close(Error::Cancel);
                    // Keep every member and its link: media between members must not depend
                    // on the root.
                    self.members().root_lost();
                    tracing::info!("cluster: root link lost: {reason}");
                }
                Err(err) => tracing::warn!("cluster: cannot reach the root {root}: {err}"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                _ = withdrawn.wait_for(|withdrawn| *withdrawn) => return,
            }
            self.stats().redial();
        }
    }

    /// Advertises this relay on a discovery link and follows the members the root announces,
    /// until the link ends or this relay is `withdrawn`; returns why.
    async fn discover(&self, session: &Session, withdrawn: &mut watch::Receiver<bool>) -> Error {
        // The producer must live as long as the link: dropping it would end the track and
        // withdraw the advertisement (the bug of 0.6.15, spec §10.4).
        let _origin = match self.node() {
            Some(node) => {
                let (producer, consumer) = Track::new(origin_path(node)).produce();
                if let Err(err) = session.publish(consumer) {
                    return err;
                }
                Some(producer)
            }
            None => None,
        };
        self.members().resync();
        let mut announced = session.announced(origins_prefix());
        loop {
            let first = tokio::select! {
                biased;
                err = session.closed() => return err,
                _ = withdrawn.wait_for(|withdrawn| *withdrawn) => {
                    return Error::Transport(TransportError::Connection(Cause::msg(
                        "withdrawn from the cluster",
                    )))
                }
                event = announced.next() => event,
            };
            // When the announce stream ends, every member is reported `Ended` at once, then
            // `None`: those are not departures. Take what is ready, and drop the `Ended`s of a
            // batch that ends the stream.
            let mut batch = vec![first];
            while let Some(Some(_)) = batch.last() {
                match announced.next().now_or_never() {
                    Some(event) => batch.push(event),
                    None => break,
                }
            }
            let (changes, lost) = member_changes(batch);
            for change in changes {
                match change {
                    Change::Joined(name) => self.member_up(&name),
                    Change::Left(name) => self.member_down(&name),
                }
            }
            if lost {
                return Error::Transport(TransportError::Connection(Cause::msg(
                    "the root ended its announcements",
                )));
            }
        }
    }
}

/// A change in the membership, as the root announced it.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Joined(String),
    Left(String),
}

/// The membership changes of a batch of discovery events taken together, and whether the
/// batch ends the stream (its last event is `None`). The `Ended`s of such a batch report the
/// lost stream, not departures, and are dropped. Paths that name no member are ignored.
fn member_changes(batch: Vec<Option<Announced>>) -> (Vec<Change>, bool) {
    let lost = matches!(batch.last(), Some(None));
    let changes = batch
        .into_iter()
        .flatten()
        .filter_map(|event| match event {
            Announced::Active(path) => member_name(&path).map(|name| Change::Joined(name.into())),
            Announced::Ended(path) if !lost => {
                member_name(&path).map(|name| Change::Left(name.into()))
            }
            Announced::Ended(_) => None,
        })
        .collect();
    (changes, lost)
}

/// Keeps a peer link to the member `name` (link generation `generation`): dials it, registers
/// what it announces in the relay's remotes, and routes subscriptions through it, until
/// `stop` is set. A dropped link withdraws the member's paths and is redialed with backoff
/// while the membership says so.
pub(crate) async fn run_peer_link(
    cluster: Cluster,
    name: String,
    url: Url,
    generation: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new();
    loop {
        let dialed = tokio::select! {
            dialed = cluster.dial(&url) => dialed,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match dialed {
            Ok(session) => {
                backoff.reset();
                let _up = cluster.stats().peer_up();
                tracing::info!("cluster: linked to member {name}");
                // Closing the session ends `serve`, which then withdraws every path; `serve`
                // itself must not be cancelled, or the paths would stay.
                let closer = async {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                    session.close(Error::Cancel);
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    () = cluster.inner.remotes.serve(&session, Path::new()) => {}
                    () = closer => {}
                }
                session.close(Error::Cancel);
                let reason = session.closed().await;
                tracing::info!("cluster: link to member {name} ended: {reason}");
            }
            Err(err) => tracing::info!("cluster: cannot reach member {name}: {err}"),
        }
        if *stop.borrow() || !cluster.members().keep(&name, generation) {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => cluster.stats().redial(),
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(name: &str) -> Option<Announced> {
        Some(Announced::Active(origin_path(name)))
    }

    fn ended(name: &str) -> Option<Announced> {
        Some(Announced::Ended(origin_path(name)))
    }

    #[test]
    fn departures_in_order_while_the_stream_lives() {
        let (changes, lost) = member_changes(vec![ended("a:1"), active("b:1")]);
        assert!(!lost);
        assert_eq!(
            changes,
            [Change::Left("a:1".into()), Change::Joined("b:1".into())]
        );
    }

    #[test]
    fn ends_reported_with_the_end_of_the_stream_are_not_departures() {
        let (changes, lost) = member_changes(vec![active("c:1"), ended("a:1"), ended("b:1"), None]);
        assert!(lost);
        assert_eq!(changes, [Change::Joined("c:1".into())]);
    }

    #[test]
    fn paths_that_name_no_member_are_ignored() {
        let other = Some(Announced::Active(Path::from_iter(["internal", "origins"])));
        let (changes, lost) = member_changes(vec![other]);
        assert!(!lost);
        assert!(changes.is_empty());
    }
}
