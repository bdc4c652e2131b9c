//! What an operator watches of the cluster: links up, redials, and whether the root has been
//! reached.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// Counters of this relay's cluster links, read at scrape time.
#[derive(Debug)]
pub struct ClusterStats {
    peers_connected: AtomicU64,
    redials: AtomicU64,
    root_reached: watch::Sender<bool>,
}

impl Default for ClusterStats {
    fn default() -> Self {
        Self {
            peers_connected: AtomicU64::new(0),
            redials: AtomicU64::new(0),
            root_reached: watch::Sender::new(false),
        }
    }
}

impl ClusterStats {
    /// Peer links this relay dialed that are up now.
    pub fn peers_connected(&self) -> u64 {
        self.peers_connected.load(Ordering::Relaxed)
    }

    /// Dials repeated after a link dropped or a dial failed (root and peer links).
    pub fn redials(&self) -> u64 {
        self.redials.load(Ordering::Relaxed)
    }

    /// True once a discovery link to the root has been set up (always false on the root).
    pub fn root_reached(&self) -> bool {
        *self.root_reached.borrow()
    }

    /// Resolves once a discovery link to the root has been set up; never on the root.
    pub async fn wait_root_reached(&self) {
        let mut reached = self.root_reached.subscribe();
        let _ = reached.wait_for(|reached| *reached).await;
    }

    pub(crate) fn set_root_reached(&self) {
        self.root_reached
            .send_if_modified(|reached| !std::mem::replace(reached, true));
    }

    pub(crate) fn redial(&self) {
        self.redials.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a peer link as up until the guard drops.
    pub(crate) fn peer_up(&self) -> PeerUp<'_> {
        self.peers_connected.fetch_add(1, Ordering::Relaxed);
        PeerUp(&self.peers_connected)
    }
}

/// One connected peer link, uncounted on drop.
pub(crate) struct PeerUp<'a>(&'a AtomicU64);

impl Drop for PeerUp<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
