//! The window of recent groups a track keeps for new and slow consumers.
//!
//! The cache always holds the latest group (the highest sequence) and, within the limits of a
//! [`CacheConfig`], the groups before it. It evicts the lowest sequence first. Evicted groups
//! stay alive for the consumers that hold them; the track just stops referencing them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::group::GroupShared;

/// How many recent groups a track keeps (see [`Track::produce_with`](super::Track::produce_with)).
///
/// The latest group is always kept, even when it alone exceeds `max_bytes`. The byte limit is
/// enforced each time a group is created, so the groups still being written may exceed it until
/// the next one.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// The maximum number of cached groups, the latest included (at least 1). Default 8.
    pub max_groups: usize,
    /// The maximum number of frame payload bytes held by cached groups. Default 32 MiB.
    pub max_bytes: u64,
    /// A memory budget shared with other tracks; when it is exceeded, the track evicts every
    /// group but its latest on its next `create_group`. Default none.
    pub budget: Option<Arc<CacheBudget>>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_groups: 8,
            max_bytes: 32 * 1024 * 1024,
            budget: None,
        }
    }
}

/// A byte budget shared by the caches of many tracks, so a relay can bound its total cache memory.
///
/// Shared through an [`Arc`]: every [`CacheConfig`] that holds a clone, and every track cache
/// made from one, counts against the same budget, which lives as long as the last of them.
///
/// ```
/// use std::sync::Arc;
/// use moq_transfork::model::{CacheBudget, CacheConfig};
///
/// let budget = Arc::new(CacheBudget::new(256 * 1024 * 1024));
/// let config = CacheConfig { budget: Some(budget.clone()), ..Default::default() };
/// assert_eq!(config.budget.as_deref().map(CacheBudget::used), Some(0));
/// ```
#[derive(Debug)]
pub struct CacheBudget {
    limit: u64,
    used: AtomicU64,
    evictions: AtomicU64,
}

impl CacheBudget {
    /// A budget of `limit` bytes, none used.
    pub const fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The payload bytes currently held by the caches that share this budget.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// True when more than the limit is in use.
    pub fn is_exceeded(&self) -> bool {
        self.used() > self.limit
    }

    /// How many groups the caches sharing this budget have evicted (for the window, the
    /// budget or the track's expiry) since it was created.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// The bytes held by one track's cached groups, shared with those groups so that writing a
/// chunk costs one atomic add.
#[derive(Debug)]
pub(crate) struct Accounting {
    bytes: AtomicU64,
    budget: Option<Arc<CacheBudget>>,
}

impl Accounting {
    pub(crate) fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(budget) = &self.budget {
            budget.used.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn sub(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
        if let Some(budget) = &self.budget {
            budget.used.fetch_sub(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A cached group and its position in creation order.
#[derive(Debug)]
struct Entry {
    group: Arc<GroupShared>,
    order: u64,
    /// True for a group this track created, whose bytes count towards this cache; false for
    /// a group inserted from another track, counted by that track only.
    owned: bool,
}

/// The cached groups of one track, indexed by sequence and by creation order.
#[derive(Debug)]
pub(crate) struct Cache {
    config: CacheConfig,
    expires: Duration,
    accounting: Arc<Accounting>,
    by_sequence: BTreeMap<u64, Entry>,
    by_order: BTreeMap<u64, u64>,
    next_order: u64,
    created: SequenceSet,
}

impl Cache {
    pub(crate) fn new(config: CacheConfig, expires: Duration) -> Self {
        Self {
            accounting: Arc::new(Accounting {
                bytes: AtomicU64::new(0),
                budget: config.budget.clone(),
            }),
            config,
            expires,
            by_sequence: BTreeMap::new(),
            by_order: BTreeMap::new(),
            next_order: 0,
            created: SequenceSet::default(),
        }
    }

    /// The accounting new groups must report their bytes to.
    pub(crate) fn accounting(&self) -> &Arc<Accounting> {
        &self.accounting
    }

    /// True if a group with this sequence was ever created on the track.
    pub(crate) fn was_created(&self, sequence: u64) -> bool {
        self.created.contains(sequence)
    }

    /// Caches a new group created by this track and applies every limit.
    pub(crate) fn insert(&mut self, group: Arc<GroupShared>, now: Instant) {
        self.insert_entry(group, now, true);
    }

    /// Caches a group created by another track (see
    /// [`TrackProducer::insert_group`](super::TrackProducer::insert_group)) and applies every
    /// limit. Its bytes stay counted by the track that created it, not by this cache.
    pub(crate) fn insert_foreign(&mut self, group: Arc<GroupShared>, now: Instant) {
        self.insert_entry(group, now, false);
    }

    fn insert_entry(&mut self, group: Arc<GroupShared>, now: Instant, owned: bool) {
        let sequence = group.sequence();
        let order = self.next_order;
        self.next_order += 1;
        self.created.insert(sequence);
        self.by_order.insert(order, sequence);
        self.by_sequence.insert(
            sequence,
            Entry {
                group,
                order,
                owned,
            },
        );
        self.evict_expired(now);
        self.enforce_limits();
    }

    /// Evicts every group and forgets every sequence created so far, so that groups numbered
    /// afresh are accepted. The creation order goes on, so consumers keep their position.
    pub(crate) fn forget(&mut self) {
        self.clear();
        self.created = SequenceSet::default();
    }

    /// Evicts the groups older than the track's `group_expires` (if non-zero).
    ///
    /// Groups are created in creation order, so the expired ones come first in `by_order`.
    pub(crate) fn evict_expired(&mut self, now: Instant) {
        if self.expires.is_zero() {
            return;
        }
        while let Some((_, &sequence)) = self.by_order.first_key_value() {
            let expired = self.by_sequence.get(&sequence).is_some_and(|entry| {
                now.saturating_duration_since(entry.group.created()) > self.expires
            });
            if !expired {
                break;
            }
            self.remove(sequence);
        }
    }

    fn enforce_limits(&mut self) {
        // A group inserted from another track is bounded by that track's limits: once its
        // track evicts it (its bytes no longer counted anywhere), evict it here too, unless it
        // is the latest.
        if let Some((&latest, _)) = self.by_sequence.last_key_value() {
            let gone: Vec<u64> = self
                .by_sequence
                .iter()
                .filter(|(&sequence, entry)| {
                    sequence != latest && !entry.owned && !entry.group.is_accounted()
                })
                .map(|(&sequence, _)| sequence)
                .collect();
            for sequence in gone {
                self.remove(sequence);
            }
        }
        let max_groups = self.config.max_groups.max(1);
        let over_budget = self
            .config
            .budget
            .as_deref()
            .is_some_and(CacheBudget::is_exceeded);
        while self.by_sequence.len() > 1
            && (over_budget
                || self.by_sequence.len() > max_groups
                || self.accounting.bytes() > self.config.max_bytes)
        {
            let Some((&lowest, _)) = self.by_sequence.first_key_value() else {
                break;
            };
            self.remove(lowest);
        }
    }

    fn remove(&mut self, sequence: u64) {
        if let Some(entry) = self.by_sequence.remove(&sequence) {
            self.by_order.remove(&entry.order);
            if entry.owned {
                entry.group.uncache();
                if let Some(budget) = &self.config.budget {
                    budget.evictions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Evicts everything; returns the evicted groups this track created (not the inserted
    /// ones, which belong to another track).
    pub(crate) fn clear(&mut self) -> Vec<Arc<GroupShared>> {
        self.by_order.clear();
        let groups: Vec<_> = std::mem::take(&mut self.by_sequence)
            .into_values()
            .filter(|entry| entry.owned)
            .map(|entry| entry.group)
            .collect();
        for group in &groups {
            group.uncache();
        }
        groups
    }

    /// The creation order of the latest cached group, or of the next group if none is cached:
    /// where a new consumer starts.
    pub(crate) fn start(&self) -> u64 {
        self.by_sequence
            .last_key_value()
            .map_or(self.next_order, |(_, entry)| entry.order)
    }

    /// The first cached group created at or after `order`, with its creation order.
    pub(crate) fn next_from(&self, order: u64) -> Option<(u64, &Arc<GroupShared>)> {
        let (&order, sequence) = self.by_order.range(order..).next()?;
        let entry = self.by_sequence.get(sequence)?;
        Some((order, &entry.group))
    }

    /// The creation order the next group will get.
    pub(crate) fn next_order(&self) -> u64 {
        self.next_order
    }

    pub(crate) fn get(&self, sequence: u64) -> Option<&Arc<GroupShared>> {
        self.by_sequence.get(&sequence).map(|entry| &entry.group)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_sequence.len()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        // Give the bytes back to the shared budget.
        self.clear();
    }
}

/// The most disjoint ranges [`SequenceSet`] keeps; beyond it, the oldest gap is filled.
const MAX_SEQUENCE_RANGES: usize = 256;

/// The sequences created so far, as disjoint inclusive ranges, so that sequential creation costs
/// one entry however long the track lives.
///
/// A peer that creates every other sequence could make it grow, so past
/// [`MAX_SEQUENCE_RANGES`] the lowest gap is treated as created: a group that old arriving
/// late is then refused as a duplicate.
#[derive(Debug, Default)]
struct SequenceSet {
    /// start → end (inclusive)
    ranges: BTreeMap<u64, u64>,
}

impl SequenceSet {
    fn contains(&self, sequence: u64) -> bool {
        self.ranges
            .range(..=sequence)
            .next_back()
            .is_some_and(|(_, &end)| sequence <= end)
    }

    fn insert(&mut self, sequence: u64) {
        if self.contains(sequence) {
            return;
        }
        let mut start = sequence;
        let mut end = sequence;
        if let Some((&before, &before_end)) = self.ranges.range(..sequence).next_back() {
            if before_end.checked_add(1) == Some(sequence) {
                start = before;
            }
        }
        if let Some(next) = sequence.checked_add(1) {
            if let Some(next_end) = self.ranges.remove(&next) {
                end = next_end;
            }
        }
        self.ranges.insert(start, end);
        if self.ranges.len() > MAX_SEQUENCE_RANGES {
            if let (Some((first, _)), Some((_, second_end))) =
                (self.ranges.pop_first(), self.ranges.pop_first())
            {
                self.ranges.insert(first, second_end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_set_merges_adjacent_ranges() {
        let mut set = SequenceSet::default();
        for sequence in [0, 1, 2, 5, 4, 3] {
            assert!(!set.contains(sequence));
            set.insert(sequence);
            assert!(set.contains(sequence));
        }
        assert_eq!(set.ranges.len(), 1);
        assert!(!set.contains(6));
    }

    #[test]
    fn sequence_set_stays_bounded_with_gaps() {
        let mut set = SequenceSet::default();
        for sequence in (0..10_000).map(|n| n * 2) {
            set.insert(sequence);
        }
        assert!(set.ranges.len() <= MAX_SEQUENCE_RANGES);
        assert!(set.contains(19_998));
        assert!(!set.contains(19_997));
    }
}
