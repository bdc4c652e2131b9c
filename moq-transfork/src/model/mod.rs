//! The data model: tracks named by paths, their groups and frames, and announcements.
//!
//! Every concept comes as a producer/consumer pair (spec §9). Producer methods are synchronous;
//! consumer methods are `async`, with `poll_*` twins for hand-written futures. A clean end is
//! `Ok(None)` (or `None`), and closing with an error gives every consumer `Err(err)`. Payloads are
//! [`bytes::Bytes`], shared by every consumer and never copied. The model spawns no tasks, sets
//! no timers and never reads the clock to expire groups: expiry takes its `now` from the caller
//! ([`TrackProducer::create_group_at`], [`TrackProducer::expire`]), so tests and fuzzing control
//! time. Only the convenience forms [`TrackProducer::create_group`] and
//! [`TrackProducer::append_group`] read [`tokio::time::Instant::now`], to stamp a new group.

mod announced;
mod cache;
mod frame;
mod group;
mod order;
mod path;
mod track;
mod waiter;

pub use announced::{Announced, AnnouncedConsumer, AnnouncedProducer};
pub use cache::{CacheBudget, CacheConfig};
pub use frame::{FrameConsumer, FrameProducer};
pub use group::{GroupConsumer, GroupProducer};
pub use order::GroupOrder;
pub(crate) use path::PathBuilder;
pub use path::{Parts, Path};
pub use track::{Track, TrackConsumer, TrackHandle, TrackProducer, MAX_SEQUENCE};

#[cfg(test)]
mod tests;
