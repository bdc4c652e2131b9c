//! What a session serves besides its own tracks, and its limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{AnnouncedProducer, CacheConfig, Track, TrackConsumer};
use crate::{Error, Path};

/// Finds tracks that were not published on the session itself (a relay's routing table).
///
/// Asked once per SUBSCRIBE or INFO request ([`route`](Self::route)) and per FETCH
/// ([`cached`](Self::cached)) whose path is not published locally. Return
/// [`Error::NotFound`] when nobody offers the path; the request is then reset with that code.
pub trait Router: Send + Sync + 'static {
    /// Returns a consumer of the track named by `track.path`, for a SUBSCRIBE or an INFO
    /// request. `track` carries the subscriber's priority, group order and expiry, for an
    /// upstream subscription.
    fn route(&self, track: &Track) -> Result<TrackConsumer, Error>;

    /// Returns a consumer of the track named by `path` only if the router holds it already,
    /// for a FETCH, which is answered from what is cached: a FETCH must not open an upstream
    /// subscription that it would drop at once.
    ///
    /// The default asks [`route`](Self::route), which suits a router without side effects;
    /// a router that subscribes upstream overrides it, as [`Origins`](crate::relay::Origins) does.
    fn cached(&self, path: &Path) -> Result<TrackConsumer, Error> {
        self.route(&Track::new(path.clone()))
    }
}

impl<F> Router for F
where
    F: Fn(&Track) -> Result<TrackConsumer, Error> + Send + Sync + 'static,
{
    fn route(&self, track: &Track) -> Result<TrackConsumer, Error> {
        self(track)
    }
}

/// The default [`SessionOptions::max_frame_size`]: 16 MiB, eight times a large keyframe
/// (4K video keyframes are a few MB), small enough that one frame never dominates memory.
pub const DEFAULT_MAX_FRAME_SIZE: u64 = 16 << 20;

/// The default [`SessionOptions::max_group_size`]: 32 MiB, the cap moq-dev applies to a group,
/// and some 10 s of 25 Mb/s video.
pub const DEFAULT_MAX_GROUP_SIZE: u64 = 32 << 20;

/// The default [`SessionOptions::max_recv_bytes`]: 64 MiB, two groups of the largest default
/// size arriving at once on one connection.
pub const DEFAULT_MAX_RECV_BYTES: u64 = 64 << 20;

/// The default [`SessionOptions::max_inflight_bytes`]: 2 MiB, more than half a second of
/// 25 Mb/s video and seconds of ordinary streams, and several round trips' worth of either;
/// more than that behind, a subscriber is better served by the newest group than by the
/// backlog (at the overload point of docs/reliability.md, 4 MiB let p99 latency reach 1.9 s).
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 2 << 20;

/// The default [`SessionOptions::max_inflight_lag`]: 1 s, a few round trips of the slowest
/// paths plus their jitter; a live viewer further behind than that is better served by the
/// newest group.
pub const DEFAULT_MAX_INFLIGHT_LAG: Duration = Duration::from_secs(1);

/// Decides which paths a session shows its peer in announcements: a relay passes the scope of
/// the client's token. Returns true for a path the peer may see.
pub type AnnounceFilter = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// Options of a session, fixed before its first request can arrive.
#[derive(Clone)]
pub struct SessionOptions {
    /// More announcements to offer the peer besides the tracks published on the session
    /// (a relay passes the announcements of all its other sessions). A path offered by
    /// several sources is announced once.
    pub announce: Vec<AnnouncedProducer>,
    /// When set, only paths it accepts are announced to the peer, whatever their source
    /// (tracks published on the session included). It does not restrict subscriptions: a
    /// relay scopes those in its [`Router`].
    pub announce_filter: Option<AnnounceFilter>,
    /// Where to find tracks not published on the session itself.
    pub router: Option<Arc<dyn Router>>,
    /// The cache window of tracks this session subscribes to.
    pub cache: CacheConfig,
    /// How many groups of one subscription may be in flight to the peer at once: started and
    /// not yet completely written to the transport (written groups awaiting acknowledgement
    /// count towards [`max_inflight_bytes`](Self::max_inflight_bytes) only). When a newer
    /// group arrives beyond this, the oldest group still being written is dropped (reset, and
    /// reported with GROUP_DROP), so a peer that stops reading costs bounded memory. Default 8.
    pub max_inflight_groups: usize,
    /// How many payload bytes of one subscription may be in flight to the peer at once: from
    /// the first byte of a group until the peer's transport acknowledges all of it (a group
    /// still unacknowledged 2 s after its last byte stops counting). When a newer group
    /// arrives while more are in flight, the oldest groups are dropped until the rest fit: a
    /// subscriber that falls behind gets the newest group, not a backlog. One group alone in
    /// flight is kept, however large: a group larger than the window is not cut short by the
    /// next (the lag bound below drops it if it lags). Default [`DEFAULT_MAX_INFLIGHT_BYTES`].
    pub max_inflight_bytes: u64,
    /// How long a group of a subscription in descending order (live) may still be written
    /// once a newer group of the subscription has arrived; then it is dropped (reset, and
    /// reported with GROUP_DROP). A subscriber on a path slower than the track thus stays
    /// about this far behind the newest group at most, whatever the bitrate: the group and
    /// byte windows alone let the subscriber of a 2 Mb/s track fall seconds behind before
    /// they drop anything. Groups in ascending order are all wanted, and only the windows
    /// bound them. Default [`DEFAULT_MAX_INFLIGHT_LAG`].
    pub max_inflight_lag: Duration,
    /// The largest frame accepted from the peer, in bytes; a larger FRAME header stops its
    /// group stream with [`Error::BoundsExceeded`] before any of its payload is read.
    /// Default [`DEFAULT_MAX_FRAME_SIZE`].
    pub max_frame_size: u64,
    /// The most one group from the peer may hold, in declared payload bytes plus a small cost
    /// per frame, checked at each FRAME header; a larger group is stopped with
    /// [`Error::BoundsExceeded`]. Default [`DEFAULT_MAX_GROUP_SIZE`].
    pub max_group_size: u64,
    /// The most payload bytes the peer's unfinished groups may hold together: what the
    /// session has received of groups (or fetches) still arriving. Counted per chunk as it is
    /// read; the group stream whose chunk would exceed it is stopped with
    /// [`Error::BoundsExceeded`]. A group that finishes hands its bytes over to its track's
    /// cache, which bounds them from then on; a group that leaves the cache before it is
    /// complete is stopped at once ([`Error::Cancel`]). Default [`DEFAULT_MAX_RECV_BYTES`].
    pub max_recv_bytes: u64,
    /// How long an upstream subscription outlives its last consumer, so a viewer that
    /// reconnects at once does not cost a new SUBSCRIBE.
    pub linger: Duration,
    /// The most paths the peer may hold active at once on the announce streams this session
    /// follows ([`Session::announced`](crate::Session::announced)), all streams together.
    /// The announce stream that would go beyond it is reset with [`Error::BoundsExceeded`],
    /// which ends every path announced on it. Default
    /// [`DEFAULT_MAX_ANNOUNCED_PATHS`](Self::DEFAULT_MAX_ANNOUNCED_PATHS).
    pub max_announced_paths: usize,
    /// Where the session counts what it moves; share one to count many sessions together.
    pub stats: Arc<super::SessionStats>,
}

impl SessionOptions {
    /// The default of [`max_announced_paths`](Self::max_announced_paths): enough for a
    /// session that follows every path of a large relay.
    pub const DEFAULT_MAX_ANNOUNCED_PATHS: usize = 65_536;
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            announce: Vec::new(),
            announce_filter: None,
            router: None,
            cache: CacheConfig::default(),
            max_inflight_groups: 8,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            max_inflight_lag: DEFAULT_MAX_INFLIGHT_LAG,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_group_size: DEFAULT_MAX_GROUP_SIZE,
            max_recv_bytes: DEFAULT_MAX_RECV_BYTES,
            linger: Duration::ZERO,
            max_announced_paths: Self::DEFAULT_MAX_ANNOUNCED_PATHS,
            stats: Arc::default(),
        }
    }
}

impl fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionOptions")
            .field("announce", &self.announce.len())
            .field("announce_filter", &self.announce_filter.is_some())
            .field("router", &self.router.is_some())
            .field("cache", &self.cache)
            .field("max_inflight_groups", &self.max_inflight_groups)
            .field("max_inflight_bytes", &self.max_inflight_bytes)
            .field("max_inflight_lag", &self.max_inflight_lag)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_group_size", &self.max_group_size)
            .field("max_recv_bytes", &self.max_recv_bytes)
            .field("linger", &self.linger)
            .field("max_announced_paths", &self.max_announced_paths)
            .finish()
    }
}
