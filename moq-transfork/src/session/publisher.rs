//! The publisher half of a session: answers the peer's announce, subscribe, fetch and info
//! requests (spec §5.2–§5.5) and sends group streams (spec §5.6).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use futures::FutureExt;

use super::priority::stream_priority;
use super::schedule::{send_frame, Admitted, SendScheduler, WriteClass};
use super::stream::{Reader, Writer};
use super::subscription::{Subscription, Window};
use super::{AnnounceFilter, Router, SessionOptions, SessionStats};
use crate::message::{Announce, AnnouncePlease, BiStream, Fetch, Info, InfoRequest, Subscribe};
use crate::model::{
    Announced, AnnouncedConsumer, AnnouncedProducer, Track, TrackConsumer, TrackHandle,
};
use crate::sync::lock;
use crate::transport::Connection;
use crate::{Error, GroupOrder, Path};

/// The most announce requests one session serves at once; more are reset with
/// [`Error::ProtocolViolation`].
const MAX_ANNOUNCE_REQUESTS: usize = 32;

/// One of the [`MAX_ANNOUNCE_REQUESTS`] slots, given back on drop.
struct AnnounceSlot<'a>(&'a AtomicUsize);

impl<'a> AnnounceSlot<'a> {
    fn take(count: &'a AtomicUsize) -> Result<Self, Error> {
        if count.fetch_add(1, Ordering::Relaxed) >= MAX_ANNOUNCE_REQUESTS {
            count.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::ProtocolViolation);
        }
        Ok(Self(count))
    }
}

impl Drop for AnnounceSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The most announcement changes written in one batch.
const MAX_ANNOUNCE_BATCH: usize = 1024;

/// The publisher half; cheap to clone.
#[derive(Clone)]
pub(super) struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    conn: Connection,
    /// Tracks published on this session, by exact path, with the id of the publish call.
    /// Handles do not count as consumers, so a publisher sees when nobody subscribes.
    tracks: Mutex<HashMap<Path, (u64, TrackHandle)>>,
    next_publish: std::sync::atomic::AtomicU64,
    /// Announcements of the tracks above.
    local: AnnouncedProducer,
    /// Announcements offered on behalf of others (a relay's other sessions).
    extra: Vec<AnnouncedProducer>,
    /// Which paths the peer may see announced (all when `None`).
    announce_filter: Option<AnnounceFilter>,
    router: Option<Arc<dyn Router>>,
    /// The in-flight window of each subscription the peer makes.
    window: Window,
    /// Announce requests being served now.
    announce_requests: AtomicUsize,
    stats: Arc<SessionStats>,
    /// Orders the media writes of the connection.
    scheduler: Arc<SendScheduler>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("tracks", &self.tracks().len())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub(super) fn new(conn: Connection, options: &SessionOptions) -> Self {
        Self {
            inner: Arc::new(PublisherInner {
                scheduler: SendScheduler::new(conn.clone()),
                conn,
                tracks: Mutex::default(),
                next_publish: 0.into(),
                local: AnnouncedProducer::new(),
                extra: options.announce.clone(),
                announce_filter: options.announce_filter.clone(),
                router: options.router.clone(),
                window: Window {
                    groups: options.max_inflight_groups.max(1),
                    bytes: options.max_inflight_bytes,
                    lag: options.max_inflight_lag,
                },
                announce_requests: AtomicUsize::new(0),
                stats: options.stats.clone(),
            }),
        }
    }

    fn tracks(&self) -> MutexGuard<'_, HashMap<Path, (u64, TrackHandle)>> {
        lock(&self.inner.tracks)
    }

    /// Publishes `track` until it ends or the session does (spec §7.1).
    pub(super) fn publish(&self, track: TrackConsumer) -> Result<(), Error> {
        let track = track.handle();
        let path = track.info().path.clone();
        let id = self.inner.next_publish.fetch_add(1, Ordering::Relaxed);
        {
            let mut tracks = self.tracks();
            if tracks.contains_key(&path) {
                return Err(Error::Duplicate);
            }
            tracks.insert(path.clone(), (id, track.clone()));
        }
        self.inner.local.announce(path.clone());
        tracing::debug!(%path, "published");

        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = track.closed() => {},
                _ = this.inner.conn.closed() => {},
            }
            let mut tracks = this.tracks();
            if tracks.get(&path).is_some_and(|(current, _)| *current == id) {
                tracks.remove(&path);
                drop(tracks);
                this.inner.local.unannounce(&path);
                tracing::debug!(%path, "unpublished");
            }
        });
        Ok(())
    }

    /// Finds a track by exact path: published here first, then the router.
    fn lookup(&self, track: &Track) -> Result<TrackConsumer, Error> {
        if let Some((_, published)) = self.tracks().get(&track.path) {
            return Ok(published.subscribe());
        }
        match &self.inner.router {
            Some(router) => router.route(track),
            None => Err(Error::NotFound),
        }
    }

    /// Finds a track by exact path for a FETCH: published here first, then what the router
    /// holds already (a FETCH never makes it subscribe upstream).
    fn lookup_cached(&self, path: &Path) -> Result<TrackConsumer, Error> {
        if let Some((_, published)) = self.tracks().get(path) {
            return Ok(published.subscribe());
        }
        match &self.inner.router {
            Some(router) => router.cached(path),
            None => Err(Error::NotFound),
        }
    }

    /// Serves one bidi stream opened by the peer, whatever its type.
    pub(super) async fn serve(self, mut writer: Writer, mut reader: Reader) {
        let result = match reader.decode::<BiStream>().await {
            Ok(BiStream::Session) => Err(Error::UnexpectedStream),
            Ok(BiStream::Announce) => self.serve_announce(&mut writer, &mut reader).await,
            Ok(BiStream::Subscribe) => self.serve_subscribe(&mut writer, &mut reader).await,
            Ok(BiStream::Fetch) => self.serve_fetch(&mut writer, &mut reader).await,
            Ok(BiStream::Info) => self.serve_info(&mut writer, &mut reader).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {}
            Err(err) => {
                tracing::debug!(%err, code = err.code(), "request failed");
                self.inner.stats.reset(&err);
                writer.reset(&err);
                reader.stop(&err);
            }
        }
    }

    /// Spec §5.2: the peer's ANNOUNCE_PLEASE, answered with the matching active paths and then
    /// every change, until either side ends the stream.
    async fn serve_announce(&self, writer: &mut Writer, reader: &mut Reader) -> Result<(), Error> {
        let AnnouncePlease { prefix } = reader.decode().await?;
        // Each request follows every matching path; a peer may not multiply that without bound.
        let _slot = AnnounceSlot::take(&self.inner.announce_requests)?;
        tracing::debug!(%prefix, "announce requested");

        let mut sources = vec![self.inner.local.subscribe_prefix(prefix.clone())];
        for extra in &self.inner.extra {
            sources.push(extra.subscribe_prefix(prefix.clone()));
        }

        loop {
            let mut events = tokio::select! {
                events = next_events(&mut sources, MAX_ANNOUNCE_BATCH) => events,
                res = reader.closed() => {
                    // The subscriber lost interest; answer its FIN with ours (spec §7.3).
                    res?;
                    return writer.finish();
                }
            };
            if sources.is_empty() {
                return writer.finish();
            }
            // Gather what is already pending (bounded), so one write carries the whole update.
            while events.len() < MAX_ANNOUNCE_BATCH {
                match next_events(&mut sources, MAX_ANNOUNCE_BATCH - events.len()).now_or_never() {
                    Some(more) if !more.is_empty() => events.extend(more),
                    _ => break,
                }
            }
            if let Some(filter) = &self.inner.announce_filter {
                // Deterministic per path, so a hidden path's end is hidden too.
                events.retain(|event| filter(event.path()));
            }
            let messages = net_changes(events, &prefix);
            if !messages.is_empty() {
                writer.encode_all(&messages).await?;
            }
        }
    }

    /// Spec §5.3: a SUBSCRIBE, answered with INFO and then group streams until either side
    /// ends it.
    async fn serve_subscribe(&self, writer: &mut Writer, reader: &mut Reader) -> Result<(), Error> {
        let subscribe: Subscribe = reader.decode().await?;
        tracing::debug!(id = subscribe.id, path = %subscribe.path, "subscribe");
        let requested = Track::new(subscribe.path.clone())
            .with_priority(subscribe.priority)
            .with_group_order(subscribe.group_order)
            .with_group_expires(subscribe.group_expires);
        let track = self.lookup(&requested)?;

        writer.encode(&info(&track)).await?;

        let info = track.info();
        // The publisher's expiry bounds how long groups are worth sending; a subscriber may
        // ask for a shorter one.
        let expires = [info.group_expires, subscribe.group_expires]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min();
        let serving = Subscription::new(
            self.inner.conn.clone(),
            self.inner.scheduler.clone(),
            &subscribe,
            expires,
            self.inner.window,
            self.inner.stats.clone(),
        );
        let _open = self.inner.stats.downstream();
        serving.run(track, writer, reader).await
    }

    /// Spec §5.4 (as this project defines the reply): the frames of one cached group from
    /// frame `offset`, then FIN.
    async fn serve_fetch(&self, writer: &mut Writer, reader: &mut Reader) -> Result<(), Error> {
        let fetch: Fetch = reader.decode().await?;
        tracing::debug!(path = %fetch.path, group = fetch.group, "fetch");
        let track = self.lookup_cached(&fetch.path)?;
        let mut group = track.get_group(fetch.group).ok_or(Error::NotFound)?;
        // The model expires groups only at the times it is told: check this one by the clock.
        let expires = track.info().group_expires;
        if !expires.is_zero() && group.created().elapsed() > expires {
            return Err(Error::NotFound);
        }
        let priority = stream_priority(fetch.priority, GroupOrder::Descending, fetch.group);
        writer.set_priority(priority);
        self.inner.stats.group_sent();
        let mut class = WriteClass {
            priority: fetch.priority,
            subscription: None,
            rank: priority,
            start: None,
        };

        let mut index = 0u64;
        let mut batch = Vec::new();
        let mut admitted = Admitted::default();
        let sending = async {
            while let Some(frame) = group.next_frame().await? {
                if index >= fetch.offset {
                    self.inner.stats.frame_sent();
                    let stats = &self.inner.stats;
                    send_frame(
                        writer,
                        &self.inner.scheduler,
                        &mut class,
                        frame,
                        &mut batch,
                        &mut admitted,
                        |len| stats.sent(len),
                    )
                    .await?;
                }
                index += 1;
            }
            if index < fetch.offset {
                return Err(Error::NotFound);
            }
            writer.finish()
        };
        let result = sending.await;
        if result.is_err() {
            // The stream is reset: what it holds unsent never leaves.
            self.inner.scheduler.abandon(admitted);
        }
        result
    }

    /// Spec §5.5: one INFO, then FIN.
    async fn serve_info(&self, writer: &mut Writer, reader: &mut Reader) -> Result<(), Error> {
        let InfoRequest { path } = reader.decode().await?;
        let track = self.lookup(&Track::new(path))?;
        writer.encode(&info(&track)).await?;
        writer.finish()
    }
}

/// The INFO describing `track`; `group_latest` is 0 while there is no group (spec §5.3).
fn info(track: &TrackConsumer) -> Info {
    let description = track.info();
    Info {
        priority: description.priority,
        group_order: description.group_order,
        group_expires: description.group_expires,
        group_latest: track.latest().unwrap_or(0),
    }
}

/// Returns the ANNOUNCEs that take the peer from its view before a batch of visible changes
/// (see [`next_events`]) to the view after it: removals before additions, each in ascending
/// order (spec §5.2). A path that appeared and vanished within the batch is not mentioned; one
/// that vanished and came back is ended and announced again (a new instance).
fn net_changes(events: Vec<Announced>, prefix: &Path) -> Vec<Announce> {
    // Visible changes of one path alternate, so the first tells its state before the batch.
    // For each touched path: active before, ended within, active after.
    let mut touched: BTreeMap<Path, (bool, bool, bool)> = BTreeMap::new();
    for event in events {
        let (path, active) = match event {
            Announced::Active(path) => (path, true),
            Announced::Ended(path) => (path, false),
        };
        let entry = touched.entry(path).or_insert((!active, false, !active));
        entry.1 |= !active;
        entry.2 = active;
    }
    let mut ended = Vec::new();
    let mut active = Vec::new();
    for (path, (before, dropped, after)) in touched {
        if before && dropped {
            ended.push(Announce::Ended {
                suffix: suffix(&path, prefix),
            });
        }
        if after && (!before || dropped) {
            active.push(Announce::Active {
                suffix: suffix(&path, prefix),
            });
        }
    }
    ended.extend(active);
    ended
}

/// The suffix of `path` after `prefix` (every path a prefixed consumer yields has it).
fn suffix(path: &Path, prefix: &Path) -> Path {
    path.strip_prefix(prefix).unwrap_or_else(|| path.clone())
}

/// Waits until at least one source has an event and returns what is ready that changes the
/// peer's view, at most `max` changes (a new request's first pass over a large set is written
/// in bounded batches); sources that ended are removed. Returns an empty list once no source
/// is left.
///
/// A path offered by several sources is announced once, and ended with the last one: a
/// source's change is visible only when no other source has reported the path (each
/// consumer's [`reported`](AnnouncedConsumer::reported) is the per-path state, so the
/// request keeps no table of its own).
async fn next_events(sources: &mut Vec<AnnouncedConsumer>, max: usize) -> Vec<Announced> {
    futures::future::poll_fn(|cx| {
        let mut events = Vec::new();
        let mut i = 0;
        while i < sources.len() && events.len() < max {
            match sources[i].poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    let path = event.path();
                    let elsewhere = (sources.iter().enumerate())
                        .any(|(j, other)| j != i && other.reported(path));
                    if !elsewhere {
                        events.push(event);
                    }
                    continue; // drain this source before moving on
                }
                Poll::Ready(None) => {
                    sources.swap_remove(i);
                }
                Poll::Pending => i += 1,
            }
        }
        if events.is_empty() && !sources.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(events)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Path {
        Path::from_iter([name])
    }

    fn active(name: &str) -> Announced {
        Announced::Active(p(name))
    }

    fn ended(name: &str) -> Announced {
        Announced::Ended(p(name))
    }

    /// What one call of `next_events` returns, if it is ready.
    fn ready(sources: &mut Vec<AnnouncedConsumer>, max: usize) -> Option<Vec<Announced>> {
        next_events(sources, max).now_or_never()
    }

    #[test]
    fn a_path_that_comes_and_goes_within_a_batch_is_not_mentioned() {
        let events = vec![active("x"), ended("x")];
        assert!(net_changes(events, &Path::new()).is_empty());
        let events = vec![active("x"), ended("x"), active("x")];
        assert_eq!(
            net_changes(events, &Path::new()),
            vec![Announce::Active { suffix: p("x") }]
        );
    }

    #[test]
    fn a_path_that_goes_and_comes_back_is_ended_then_announced() {
        let events = vec![ended("x"), active("x")];
        let messages = net_changes(events, &Path::new());
        assert_eq!(
            messages,
            vec![
                Announce::Ended { suffix: p("x") },
                Announce::Active { suffix: p("x") }
            ]
        );
    }

    #[test]
    fn removals_come_before_additions_in_path_order() {
        let events = vec![active("c"), active("a"), ended("b")];
        assert_eq!(
            net_changes(events, &Path::new()),
            vec![
                Announce::Ended { suffix: p("b") },
                Announce::Active { suffix: p("a") },
                Announce::Active { suffix: p("c") }
            ]
        );
    }

    #[test]
    fn a_path_offered_by_two_sources_is_announced_once_and_ended_with_the_last() {
        let (one, two) = (AnnouncedProducer::new(), AnnouncedProducer::new());
        let mut sources = vec![one.subscribe(), two.subscribe()];
        one.announce(p("x"));
        two.announce(p("x"));
        assert_eq!(ready(&mut sources, 10), Some(vec![active("x")]));
        one.unannounce(&p("x"));
        assert_eq!(ready(&mut sources, 10), None, "still offered by two");
        two.unannounce(&p("x"));
        assert_eq!(ready(&mut sources, 10), Some(vec![ended("x")]));
        // Dropping a source that never offered anything ends it quietly.
        drop(one);
        assert_eq!(ready(&mut sources, 10), None);
        assert_eq!(sources.len(), 1);
        drop(two);
        assert_eq!(ready(&mut sources, 10), Some(vec![]));
    }

    #[test]
    fn a_large_set_is_returned_in_bounded_batches() {
        let producer = AnnouncedProducer::new();
        for i in 0..10 {
            producer.announce(p(&format!("{i}")));
        }
        let mut sources = vec![producer.subscribe()];
        let mut seen = 0;
        while let Some(events) = ready(&mut sources, 4) {
            assert!(!events.is_empty() && events.len() <= 4);
            seen += events.len();
        }
        assert_eq!(seen, 10);
    }
}
