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
