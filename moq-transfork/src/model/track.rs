//! Tracks: a path and a stream of numbered groups, with a cache of recent groups.
//!
//! [`Track::produce`] returns a [`TrackProducer`] that creates groups and a [`TrackConsumer`]
//! that receives them (spec §7.2, §9). Every consumer starts at the latest group, from frame 0,
//! and then receives every group created after it, in creation order, each exactly once.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::cache::{Cache, CacheConfig};
use super::group::{GroupConsumer, GroupProducer, GroupShared};
use super::waiter::{WaitList, Waiter, Wake};
use super::{GroupOrder, Path};
use crate::sync::lock;
use crate::Error;

/// The highest group sequence number: the largest QUIC varint, 2^62 - 1 (spec §3).
pub const MAX_SEQUENCE: u64 = (1 << 62) - 1;

/// A track's name and delivery preferences (spec §9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// The full path of the track.
    pub path: Path,
    /// The priority of the track relative to others; default 0.
    pub priority: i8,
    /// The order in which groups should be delivered; default [`GroupOrder::Descending`].
    pub group_order: GroupOrder,
    /// How long a group stays deliverable after its creation; zero (the default) means forever.
    pub group_expires: Duration,
}

impl Track {
    /// A track at `path` with priority 0, descending group order and no expiry.
    pub fn new(path: Path) -> Self {
        Self {
            path,
            priority: 0,
            group_order: GroupOrder::Descending,
            group_expires: Duration::ZERO,
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i8) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the group order.
    pub fn with_group_order(mut self, group_order: GroupOrder) -> Self {
        self.group_order = group_order;
        self
    }

    /// Sets the group expiry; zero means never.
    pub fn with_group_expires(mut self, group_expires: Duration) -> Self {
        self.group_expires = group_expires;
        self
    }

    /// Creates the track with the default [`CacheConfig`], returning its producer and a first
    /// consumer.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use moq_transfork::model::Track;
    /// use moq_transfork::Path;
    ///
    /// # futures::executor::block_on(async {
    /// let (producer, mut consumer) = Track::new(Path::from_iter(["demo", "clock"])).produce();
    ///
    /// let mut group = producer.append_group()?;
    /// group.write_frame(Bytes::from_static(b"hello"));
    /// drop(group); // finishes the group
    /// drop(producer); // finishes the track
    ///
    /// let mut group = consumer.next_group().await?.expect("a group");
    /// assert_eq!(group.sequence(), 0);
    /// assert_eq!(group.read_frame().await?, Some(Bytes::from_static(b"hello")));
    /// assert_eq!(group.read_frame().await?, None);
    /// assert!(consumer.next_group().await?.is_none());
    /// # Ok::<(), moq_transfork::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn produce(self) -> (TrackProducer, TrackConsumer) {
        self.produce_with(CacheConfig::default())
    }

    /// Creates the track with a custom cache, returning its producer and a first consumer.
    pub fn produce_with(self, cache: CacheConfig) -> (TrackProducer, TrackConsumer) {
        let shared = Arc::new(TrackShared {
            state: Mutex::new(TrackState {
                cache: Cache::new(cache, self.group_expires),
                latest: None,
                status: None,
                producers: 1,
                consumers: 0,
                open: Vec::new(),
                group_waiters: WaitList::default(),
                closed_waiters: WaitList::default(),
                unused_waiters: WaitList::default(),
            }),
            info: self,
        });
        let producer = TrackProducer {
            shared: shared.clone(),
        };
        let consumer = producer.subscribe();
        (producer, consumer)
    }
}

#[derive(Debug)]
struct TrackShared {
    info: Track,
    state: Mutex<TrackState>,
}

#[derive(Debug)]
struct TrackState {
    cache: Cache,
    latest: Option<u64>,
    /// `None` while live, `Ok` once every producer is gone, `Err` once closed with an error.
    status: Option<Result<(), Error>>,
    producers: usize,
    consumers: usize,
    /// Every group that may still be open, including evicted ones, so `close` can reach them.
    open: Vec<Weak<GroupShared>>,
    group_waiters: WaitList,
    closed_waiters: WaitList,
    unused_waiters: WaitList,
}

fn closed_waiters(state: &mut TrackState) -> &mut WaitList {
    &mut state.closed_waiters
}

fn unused_waiters(state: &mut TrackState) -> &mut WaitList {
    &mut state.unused_waiters
}

/// Creates the groups of a track. Clones share the track.
///
/// The track finishes cleanly when the last clone is dropped: consumers receive the groups they
/// have not seen yet, then `Ok(None)`. Groups still being written stay open until their own
/// producers finish.
#[derive(Debug)]
pub struct TrackProducer {
    shared: Arc<TrackShared>,
}

impl Clone for TrackProducer {
    fn clone(&self) -> Self {
        lock(&self.shared.state).producers += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl TrackProducer {
    /// The track's name and preferences.
    pub fn info(&self) -> &Track {
        &self.shared.info
    }

    /// Creates the group `sequence`, which consumers receive after the groups created before it,
    /// even when its sequence is lower. It is cached unless the cache limits evict it at once
    /// (a late group older than every cached one, with a full cache).
    ///
    /// # Errors
    ///
    /// - [`Error::BoundsExceeded`] if `sequence` is above [`MAX_SEQUENCE`];
    /// - [`Error::Duplicate`] if a group with this sequence was already created;
    /// - the track's error if it was closed.
    pub fn create_group(&self, sequence: u64) -> Result<GroupProducer, Error> {
        self.create_group_at(sequence, Instant::now())
    }

    /// As [`create_group`](Self::create_group), with the group created at `now` instead of
    /// the clock's time: its [`created`](GroupConsumer::created) time, from which its expiry
    /// counts, and the time at which the cache evicts the groups that expired (see
    /// [`expire`](Self::expire)). Tests and simulations pass a time they control.
    ///
    /// # Errors
    ///
    /// As [`create_group`](Self::create_group).
    pub fn create_group_at(&self, sequence: u64, now: Instant) -> Result<GroupProducer, Error> {
        if sequence > MAX_SEQUENCE {
            return Err(Error::BoundsExceeded);
        }
        let created = Self::create_locked(&mut lock(&self.shared.state), sequence, now);
        created.map(|(group, wake)| {
            wake.wake();
            group
        })
    }

    /// Creates the group after the latest one (0 for the first).
    ///
    /// # Errors
    ///
    /// As [`create_group`](Self::create_group).
    pub fn append_group(&self) -> Result<GroupProducer, Error> {
        self.append_group_at(Instant::now())
    }

    /// As [`append_group`](Self::append_group), with the group created at `now` (see
    /// [`create_group_at`](Self::create_group_at)).
    ///
    /// # Errors
    ///
    /// As [`create_group`](Self::create_group).
    pub fn append_group_at(&self, now: Instant) -> Result<GroupProducer, Error> {
        let mut state = lock(&self.shared.state);
        let sequence = state.latest.map_or(0, |latest| latest + 1);
        let created = if sequence > MAX_SEQUENCE {
            Err(Error::BoundsExceeded)
        } else {
            Self::create_locked(&mut state, sequence, now)
        };
        drop(state);
        created.map(|(group, wake)| {
            wake.wake();
            group
        })
    }

    /// Creates a group under the track lock; the caller wakes the consumers after unlocking.
    fn create_locked(
        state: &mut TrackState,
        sequence: u64,
        now: Instant,
    ) -> Result<(GroupProducer, Wake), Error> {
        match &state.status {
            Some(Err(err)) => return Err(err.clone()),
            Some(Ok(())) => return Err(Error::Cancel),
            None => {}
        }
        if state.cache.was_created(sequence) {
            return Err(Error::Duplicate);
        }
        let group = GroupShared::new(sequence, now, Some(state.cache.accounting().clone()));
        state.cache.insert(group.clone(), now);
        state.latest = Some(state.latest.map_or(sequence, |latest| latest.max(sequence)));
        state
            .open
            .retain(|weak| weak.upgrade().is_some_and(|group| !group.is_closed()));
        state.open.push(Arc::downgrade(&group));
        Ok((GroupProducer::new(group), state.group_waiters.take()))
    }

    /// Puts `group`, a group of another track, into this track without copying it; see
    /// [`RelayTrack::insert_group`](crate::relay::RelayTrack::insert_group), the public form
    /// (relay policy, out of the model's public surface).
    pub(crate) fn insert_group(&self, group: GroupConsumer, now: Instant) -> Result<(), Error> {
        let wake = {
            let mut state = lock(&self.shared.state);
            match &state.status {
                Some(Err(err)) => return Err(err.clone()),
                Some(Ok(())) => return Err(Error::Cancel),
                None => {}
            }
            let sequence = group.sequence();
            if state.cache.was_created(sequence) {
                return Err(Error::Duplicate);
            }
            state.cache.insert_foreign(group.into_shared(), now);
            state.latest = Some(state.latest.map_or(sequence, |latest| latest.max(sequence)));
            state.group_waiters.take()
        };
        wake.wake();
        Ok(())
    }

    /// Forgets every cached group and sequence; see
    /// [`RelayTrack::forget_groups`](crate::relay::RelayTrack::forget_groups).
    pub(crate) fn forget_groups(&self) {
        let mut state = lock(&self.shared.state);
        state.cache.forget();
        state.latest = None;
    }

    /// Evicts the cached groups that have expired at `now`: those created more than the
    /// track's [`group_expires`](Track::group_expires) before it (none when it is zero). The
    /// latest group goes too.
    ///
    /// The model never reads the clock to expire groups: each creation evicts the groups
    /// expired at its time, and this does so at the time its caller gives. A consumer may
    /// therefore still receive a group that expired since the last of those; a session
    /// checks each group's [`created`](GroupConsumer::created) time against the clock before
    /// it sends or serves it.
    pub fn expire(&self, now: Instant) {
        lock(&self.shared.state).cache.evict_expired(now);
    }

    /// Closes the track with `err`: every consumer's `next_group` and `closed` return
    /// `Err(err)`, and every group still open is closed with `err` too. The cache is emptied.
    /// Does nothing if the track is already closed.
    pub fn close(&self, err: Error) {
        let (wake, groups) = {
            let mut state = lock(&self.shared.state);
            if state.status.is_some() {
                return;
            }
            state.status = Some(Err(err.clone()));
            let mut groups = state.cache.clear();
            groups.extend(state.open.drain(..).filter_map(|weak| weak.upgrade()));
            let wake = state.group_waiters.take().and(state.closed_waiters.take());
            (wake, groups)
        };
        wake.wake();
        for group in groups {
            group.close(err.clone());
        }
    }

    /// A new consumer, which starts at the latest group like the first one.
    pub fn subscribe(&self) -> TrackConsumer {
        TrackConsumer::start(&self.shared)
    }

    /// A handle on this track that counts neither as producer nor as consumer.
    pub fn handle(&self) -> TrackHandle {
        TrackHandle {
            shared: self.shared.clone(),
        }
    }

    /// The highest sequence created so far.
    pub fn latest(&self) -> Option<u64> {
        lock(&self.shared.state).latest
    }

    /// The number of live [`TrackConsumer`] handles (group consumers do not count).
    pub fn consumer_count(&self) -> usize {
        lock(&self.shared.state).consumers
    }

    /// Resolves once no [`TrackConsumer`] remains: at once if there is none, otherwise when the
    /// last one is dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn unused(&self) {
        let mut waiter = Waiter::new(&self.shared.state, unused_waiters);
        poll_fn(|cx| waiter.poll(cx, |state| (state.consumers == 0).then_some(()))).await;
    }

    /// True once the track is closed with an error (a producer handle cannot see a clean finish,
    /// which needs every producer to be gone).
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).status.is_some()
    }

    /// The frame payload bytes held by cached groups.
    pub fn cached_bytes(&self) -> u64 {
        lock(&self.shared.state).cache.accounting().bytes()
    }

    /// The number of cached groups.
    pub fn cached_groups(&self) -> usize {
        lock(&self.shared.state).cache.len()
    }

    /// The number of registered waits, to check that cancelled waits leave nothing behind.
    #[cfg(test)]
    pub(crate) fn waiter_slots(&self) -> usize {
        let state = lock(&self.shared.state);
        state.group_waiters.len() + state.closed_waiters.len() + state.unused_waiters.len()
    }
}

impl Drop for TrackProducer {
    fn drop(&mut self) {
        let wake = {
            let mut state = lock(&self.shared.state);
            state.producers -= 1;
            if state.producers > 0 || state.status.is_some() {
                return;
            }
            state.status = Some(Ok(()));
            state.group_waiters.take().and(state.closed_waiters.take())
        };
        wake.wake();
    }
}

/// Receives the groups of a track.
///
/// A clone keeps the same position and continues independently.
#[derive(Debug)]
pub struct TrackConsumer {
    shared: Arc<TrackShared>,
    /// The creation order of the next group to return.
    next: u64,
    slot: Option<usize>,
}

impl Clone for TrackConsumer {
    fn clone(&self) -> Self {
        lock(&self.shared.state).consumers += 1;
        Self {
            shared: self.shared.clone(),
            next: self.next,
            slot: None,
        }
    }
}

impl TrackConsumer {
    /// The track's name and preferences.
    pub fn info(&self) -> &Track {
        &self.shared.info
    }

    /// A new consumer of the same track that starts at the latest group, whatever this
    /// consumer's position (a clone keeps the position instead).
    pub fn subscribe(&self) -> Self {
        Self::start(&self.shared)
    }

    /// A consumer positioned at the latest group.
    fn start(shared: &Arc<TrackShared>) -> Self {
        let mut state = lock(&shared.state);
        state.consumers += 1;
        Self {
            shared: shared.clone(),
            next: state.cache.start(),
            slot: None,
        }
    }

    /// Polls for the next group; see [`next_group`](Self::next_group).
    pub fn poll_next_group(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<GroupConsumer>, Error>> {
        let mut state = lock(&self.shared.state);
        let ready = match &state.status {
            Some(Err(err)) => Err(err.clone()),
            _ => {
                match state.cache.next_from(self.next) {
                    Some((order, group)) => {
                        self.next = order + 1;
                        Ok(Some(GroupConsumer::new(group.clone())))
                    }
                    None => {
                        // Everything before the next creation was returned or evicted.
                        self.next = state.cache.next_order();
                        if state.status.is_none() {
                            state.group_waiters.register(&mut self.slot, cx.waker());
                            return Poll::Pending;
                        }
                        Ok(None)
                    }
                }
            }
        };
        state.group_waiters.release(&mut self.slot);
        Poll::Ready(ready)
    }

    /// Returns the next group, to be read from frame 0.
    ///
    /// The first call returns the latest cached group (the highest sequence, even if finished);
    /// later calls return every group created after it, in creation order, each once. Groups
    /// evicted from the cache (by its limits, or as expired at a creation or at
    /// [`TrackProducer::expire`]) before this consumer got to them are skipped.
    /// Returns `Ok(None)` once the track finished cleanly and every remaining group was returned.
    ///
    /// # Errors
    ///
    /// The track's error, as soon as it is closed with one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a group is consumed only when this returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use moq_transfork::model::Track;
    /// use moq_transfork::Path;
    ///
    /// # futures::executor::block_on(async {
    /// let (producer, mut consumer) = Track::new(Path::from_iter(["chat"])).produce();
    /// let mut group = producer.create_group(7)?;
    /// group.write_frame(Bytes::from_static(b"one"));
    /// let mut frame = group.create_frame(6);
    /// frame.write(Bytes::from_static(b"tw"))?;
    /// frame.write(Bytes::from_static(b"o!!"))?;
    /// frame.write(Bytes::from_static(b"!"))?;
    /// group.finish();
    ///
    /// let mut group = consumer.next_group().await?.expect("group 7");
    /// assert_eq!(group.sequence(), 7);
    /// assert_eq!(group.read_frame().await?.as_deref(), Some(&b"one"[..]));
    /// assert_eq!(group.read_frame().await?.as_deref(), Some(&b"two!!!"[..]));
    /// assert_eq!(group.read_frame().await?, None);
    ///
    /// producer.close(moq_transfork::Error::Cancel);
    /// assert_eq!(consumer.next_group().await.err(), Some(moq_transfork::Error::Cancel));
    /// # Ok::<(), moq_transfork::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn next_group(&mut self) -> Result<Option<GroupConsumer>, Error> {
        poll_fn(|cx| self.poll_next_group(cx)).await
    }

    /// The cached group `sequence`, read from frame 0, if it is cached (see
    /// [`TrackProducer::expire`] for when expired groups leave the cache).
    pub fn get_group(&self, sequence: u64) -> Option<GroupConsumer> {
        self.shared.get_group(sequence)
    }

    /// The highest sequence created so far.
    pub fn latest(&self) -> Option<u64> {
        lock(&self.shared.state).latest
    }

    /// Waits until the track ends: `Ok(())` once every producer is gone, `Err` when it was closed
    /// with an error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) -> Result<(), Error> {
        self.shared.closed().await
    }

    /// A handle on this track that does not count as a consumer (see [`TrackHandle`]).
    pub fn handle(&self) -> TrackHandle {
        TrackHandle {
            shared: self.shared.clone(),
        }
    }
}

/// A handle on a track that does not count as a consumer: it makes consumers on demand, and
/// sees the track's description, cache and end, without keeping
/// [`TrackProducer::unused`] from resolving. A session holds published tracks this way, so a
/// publisher learns when no subscriber is left.
#[derive(Clone, Debug)]
pub struct TrackHandle {
    shared: Arc<TrackShared>,
}

impl TrackHandle {
    /// The track's name and preferences.
    pub fn info(&self) -> &Track {
        &self.shared.info
    }

    /// A new consumer, which starts at the latest group.
    pub fn subscribe(&self) -> TrackConsumer {
        TrackConsumer::start(&self.shared)
    }

    /// A cached group, from frame 0; see [`TrackConsumer::get_group`].
    pub fn get_group(&self, sequence: u64) -> Option<GroupConsumer> {
        self.shared.get_group(sequence)
    }

    /// True while group `sequence` is in the cache (not evicted). A group that
    /// left the cache can reach no new consumer, so whoever is filling it may stop.
    pub fn is_cached(&self, sequence: u64) -> bool {
        lock(&self.shared.state).cache.get(sequence).is_some()
    }

    /// The highest sequence created so far.
    pub fn latest(&self) -> Option<u64> {
        lock(&self.shared.state).latest
    }

    /// Waits until the track ends; see [`TrackConsumer::closed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) -> Result<(), Error> {
        self.shared.closed().await
    }
}

impl TrackShared {
    fn get_group(&self, sequence: u64) -> Option<GroupConsumer> {
        let state = lock(&self.state);
        state.cache.get(sequence).cloned().map(GroupConsumer::new)
    }

    async fn closed(&self) -> Result<(), Error> {
        let mut waiter = Waiter::new(&self.state, closed_waiters);
        poll_fn(|cx| waiter.poll(cx, |state| state.status.clone())).await
    }
}

impl Drop for TrackConsumer {
    fn drop(&mut self) {
        let wake = {
            let mut state = lock(&self.shared.state);
            state.group_waiters.release(&mut self.slot);
            state.consumers -= 1;
            if state.consumers > 0 {
                return;
            }
            state.unused_waiters.take()
        };
        wake.wake();
    }
}
