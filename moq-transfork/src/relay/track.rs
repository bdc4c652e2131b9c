//! A track fed with the groups of other tracks.

use tokio::time::Instant;

use crate::model::{GroupConsumer, TrackProducer};
use crate::Error;

/// A track that a relay feeds with the groups of other tracks, without copying them, and
/// hands over from one upstream track to another: what [`Origins`](super::Origins) builds its
/// relay tracks on, for relays with a policy of their own.
///
/// A plain [`TrackProducer`] only creates groups; these two operations are relay policy and
/// live here, out of the model's public surface.
#[derive(Clone, Debug)]
pub struct RelayTrack {
    producer: TrackProducer,
}

impl RelayTrack {
    /// Feeds the track of `producer` (its consumers receive what is inserted here).
    pub fn new(producer: TrackProducer) -> Self {
        Self { producer }
    }

    /// The track's producer, for everything else (consumers, closing, cache figures).
    pub fn producer(&self) -> &TrackProducer {
        &self.producer
    }

    /// Puts `group`, a group of another track, into this track, without copying it: consumers
    /// receive it after the groups created before it, like a group created here, and read
    /// the same frames as everyone else reading it (from frame 0). `now` is the time at which
    /// the cache evicts expired groups (see [`TrackProducer::expire`]).
    ///
    /// The group stays the other track's: its payload bytes count towards that track's cache
    /// only (never towards this track's `max_bytes`, budget or
    /// [`cached_bytes`](TrackProducer::cached_bytes)), and this track's limits other than bytes
    /// apply to it. Once the other track evicts it, this track evicts it too at its next
    /// insertion or creation, unless it is the latest group here, so the group costs no memory
    /// that the other track does not account for, except the one latest group. Closing this
    /// track does not close an inserted group; its own track does.
    ///
    /// # Errors
    ///
    /// - [`Error::Duplicate`] if a group with this sequence was already created or inserted
    ///   (since the last [`forget_groups`](Self::forget_groups));
    /// - the track's error if it was closed ([`Error::Cancel`] if it finished).
    pub fn insert_group(&self, group: GroupConsumer, now: Instant) -> Result<(), Error> {
        self.producer.insert_group(group, now)
    }

    /// Evicts every cached group and forgets the sequences created (or inserted) so far and the
    /// latest one, so that the track accepts groups numbered afresh: a relay does this when it
    /// switches to a new origin, whose sequence numbers may restart. Consumers keep their
    /// position: they receive the groups created after this, whatever their sequence, and
    /// keep the groups they already hold. Groups still open are not closed.
    pub fn forget_groups(&self) {
        self.producer.forget_groups();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::model::{CacheConfig, Track, TrackConsumer};
    use crate::Path;

    fn track() -> (TrackProducer, TrackConsumer) {
        Track::new(Path::from_iter(["t"])).produce()
    }

    fn relay_track() -> (RelayTrack, TrackConsumer) {
        let (producer, consumer) = track();
        (RelayTrack::new(producer), consumer)
    }

    #[tokio::test]
    async fn inserted_groups_are_shared_and_counted_by_their_own_track() {
        let (origin, mut upstream) = track();
        let (relay, mut downstream) = relay_track();
        let mut group = origin.create_group(3).unwrap();
        group.write_frame(Bytes::from_static(b"abc"));
        relay
            .insert_group(
                upstream.next_group().await.unwrap().unwrap(),
                Instant::now(),
            )
            .unwrap();
        // Frames written after the insertion reach the relay's consumers: the state is shared.
        group.write_frame(Bytes::from_static(b"de"));
        drop(group);

        let mut got = downstream.next_group().await.unwrap().unwrap();
        assert_eq!(got.sequence(), 3);
        assert_eq!(got.read_frame().await, Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(got.read_frame().await, Ok(Some(Bytes::from_static(b"de"))));
        assert_eq!(got.read_frame().await, Ok(None));
        assert_eq!(relay.producer().latest(), Some(3));
        assert_eq!(relay.producer().cached_groups(), 1);
        assert_eq!(relay.producer().cached_bytes(), 0);
        assert_eq!(origin.cached_bytes(), 5);

        // The same sequence again is a duplicate.
        let again = origin.subscribe().next_group().await.unwrap().unwrap();
        assert_eq!(
            relay.insert_group(again, Instant::now()),
            Err(Error::Duplicate)
        );

        // Evicting it from the relay leaves the origin's accounting alone.
        relay.forget_groups();
        assert_eq!(relay.producer().cached_groups(), 0);
        assert_eq!(relay.producer().latest(), None);
        assert_eq!(origin.cached_bytes(), 5);
    }

    #[tokio::test]
    async fn forgetting_accepts_reused_sequences_and_keeps_consumer_positions() {
        let (relay, mut downstream) = relay_track();
        let (a, mut from_a) = track();
        drop(a.create_group(7).unwrap());
        relay
            .insert_group(from_a.next_group().await.unwrap().unwrap(), Instant::now())
            .unwrap();
        assert_eq!(
            downstream.next_group().await.unwrap().unwrap().sequence(),
            7
        );

        let (b, mut from_b) = track();
        drop(b.create_group(7).unwrap());
        let reused = from_b.next_group().await.unwrap().unwrap();
        assert_eq!(
            relay.insert_group(reused.clone(), Instant::now()),
            Err(Error::Duplicate)
        );
        relay.forget_groups();
        relay.insert_group(reused, Instant::now()).unwrap();
        drop(b.create_group(0).unwrap());
        relay
            .insert_group(from_b.next_group().await.unwrap().unwrap(), Instant::now())
            .unwrap();
        assert_eq!(
            downstream.next_group().await.unwrap().unwrap().sequence(),
            7
        );
        assert_eq!(
            downstream.next_group().await.unwrap().unwrap().sequence(),
            0
        );
        assert_eq!(relay.producer().latest(), Some(7));
    }

    #[tokio::test]
    async fn inserted_groups_follow_their_tracks_eviction_and_survive_the_relay_closing() {
        let config = CacheConfig {
            max_groups: 2,
            ..Default::default()
        };
        let (origin, mut upstream) = Track::new(Path::from_iter(["t"])).produce_with(config);
        let (relay, _downstream) = relay_track();
        let mut open = None;
        for sequence in 0..4 {
            let group = origin.create_group(sequence).unwrap();
            relay
                .insert_group(
                    upstream.next_group().await.unwrap().unwrap(),
                    Instant::now(),
                )
                .unwrap();
            open = Some(group);
        }
        // The origin keeps 2 groups; the relay (up to 8) keeps those the origin still caches
        // (2 of the 3 before the latest were evicted by the origin at the time of insertion).
        assert_eq!(origin.cached_groups(), 2);
        assert_eq!(relay.producer().cached_groups(), 2);

        relay.producer().close(Error::Cancel);
        let open = open.unwrap();
        assert!(
            !open.is_closed(),
            "closing the relay closed the origin's group"
        );
    }
}
