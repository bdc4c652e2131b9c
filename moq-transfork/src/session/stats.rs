//! Counters of what sessions move, for an operator's metrics: relaxed atomics bumped on the
//! hot path (one `fetch_add` per frame and per chunk, no lock, no allocation), read at scrape
//! time.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// The wire codes counted one by one in [`SessionStats::resets`]: every code of [`Error`]
/// below 17; higher codes (application codes) share the last slot.
const RESET_SLOTS: usize = 18;

/// What every session sharing it moved: groups, frames and bytes in each direction, groups
/// dropped for slow subscribers, stream resets by code, and the subscriptions open now.
///
/// Hand one [`Arc`](std::sync::Arc) to many sessions through
/// [`SessionOptions::stats`](crate::SessionOptions::stats) to count them together. The
/// counters only grow; the two subscription gauges go up and down.
#[derive(Debug, Default)]
pub struct SessionStats {
    groups_received: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    groups_sent: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    groups_dropped: AtomicU64,
    subscriptions_downstream: AtomicU64,
    subscriptions_upstream: AtomicU64,
    resets: [AtomicU64; RESET_SLOTS],
}

/// A copy of the values of [`SessionStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Group streams of subscriptions received from peers (publishers).
    pub groups_received: u64,
    /// Frames received from peers, fetched ones included.
    pub frames_received: u64,
    /// Frame payload bytes received from peers, fetched ones included.
    pub bytes_received: u64,
    /// Group streams opened to subscribers, fetch replies included.
    pub groups_sent: u64,
    /// Frames sent to subscribers.
    pub frames_sent: u64,
    /// Frame payload bytes written to subscribers.
    pub bytes_sent: u64,
    /// Groups dropped (reset and reported with GROUP_DROP) because a subscriber fell behind:
    /// past its in-flight window, or in flight longer than the track's expiry.
    pub groups_dropped: u64,
    /// Subscriptions the peers hold on these sessions now (served by them).
    pub subscriptions_downstream: u64,
    /// Subscriptions these sessions hold on their peers now.
    pub subscriptions_upstream: u64,
}

impl SessionStats {
    /// The values now. Each is read on its own, so under load they may be a few frames apart.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            groups_received: get(&self.groups_received),
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            groups_sent: get(&self.groups_sent),
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            groups_dropped: get(&self.groups_dropped),
            subscriptions_downstream: get(&self.subscriptions_downstream),
            subscriptions_upstream: get(&self.subscriptions_upstream),
        }
    }

    /// Streams reset (sent) or stopped (receiving) by these sessions, by wire code: codes 0
    /// to 16 as `Some(code)`, every higher code together as `None`. Only codes with a count
    /// are listed.
    pub fn resets(&self) -> impl Iterator<Item = (Option<u32>, u64)> + '_ {
        self.resets.iter().enumerate().filter_map(|(slot, count)| {
            let count = count.load(Ordering::Relaxed);
            let code = u32::try_from(slot).ok().filter(|&c| c < 17);
            (count > 0).then_some((code, count))
        })
    }

    pub(super) fn group_received(&self) {
        self.groups_received.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn frame_received(&self) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn received(&self, bytes: u64) {
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn group_sent(&self) {
        self.groups_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn frame_sent(&self) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn sent(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn group_dropped(&self) {
        self.groups_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one stream reset or stopped with `err`'s code.
    pub(super) fn reset(&self, err: &Error) {
        let slot = usize::try_from(err.code()).map_or(RESET_SLOTS - 1, |c| c.min(RESET_SLOTS - 1));
        self.resets[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a subscription served to the peer until the guard drops.
    pub(super) fn downstream(&self) -> Open<'_> {
        Open::new(&self.subscriptions_downstream)
    }

    /// Counts a subscription held on the peer until the guard drops.
    pub(super) fn upstream(&self) -> Open<'_> {
        Open::new(&self.subscriptions_upstream)
    }
}

/// One unit of a gauge, given back on drop.
pub(super) struct Open<'a>(&'a AtomicU64);

impl<'a> Open<'a> {
    fn new(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_listed_by_code_and_high_codes_share_a_slot() {
        let stats = SessionStats::default();
        stats.reset(&Error::Cancel);
        stats.reset(&Error::BoundsExceeded);
        stats.reset(&Error::BoundsExceeded);
        stats.reset(&Error::App(3));
        stats.reset(&Error::Unknown(40));
        let resets: Vec<_> = stats.resets().collect();
        assert_eq!(resets, vec![(Some(0), 1), (Some(11), 2), (None, 2)]);
    }

    #[test]
    fn gauges_follow_their_guards() {
        let stats = SessionStats::default();
        let one = stats.downstream();
        let _two = stats.downstream();
        let _up = stats.upstream();
        assert_eq!(stats.snapshot().subscriptions_downstream, 2);
        drop(one);
        let snapshot = stats.snapshot();
        assert_eq!(
            (
                snapshot.subscriptions_downstream,
                snapshot.subscriptions_upstream
            ),
            (1, 1)
        );
    }
}
