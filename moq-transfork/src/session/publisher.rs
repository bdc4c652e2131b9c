//! The publisher half of a session: answers the peer's announce, subscribe, fetch and info
//! requests (spec §5.2–§5.5) and sends group streams (spec §5.6).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::priority::stream_priority;
use super::stream::{Reader, Writer};
use super::{Router, SessionOptions};
use crate::message::{
    Announce, AnnouncePlease, BiStream, Fetch, FrameHeader, GroupDrop, GroupHeader, Info,
    InfoRequest, Subscribe, SubscribeUpdate, UniStream,
};
use crate::model::{
    Announced, AnnouncedConsumer, AnnouncedProducer, GroupConsumer, Track, TrackConsumer,
};
use crate::transport::Connection;
use crate::{Error, GroupOrder, Path};

/// How long a finished subscription waits for its last group streams to be acknowledged
/// before it FINs the subscribe stream, so the subscriber sees every group before the end.
const FINAL_ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// The publisher half; cheap to clone.
#[derive(Clone)]
pub(super) struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    conn: Connection,
    /// Tracks published on this session, by exact path, with the id of the publish call.
    tracks: Mutex<HashMap<Path, (u64, TrackConsumer)>>,
    next_publish: std::sync::atomic::AtomicU64,
    /// Announcements of the tracks above.
    local: AnnouncedProducer,
    /// Announcements offered on behalf of others (a relay's other sessions).
    extra: Vec<AnnouncedProducer>,
    router: Option<Arc<dyn Router>>,
    max_inflight_groups: usize,
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
                conn,
                tracks: Mutex::default(),
                next_publish: 0.into(),
                local: AnnouncedProducer::new(),
                extra: options.announce.clone(),
                router: options.router.clone(),
                max_inflight_groups: options.max_inflight_groups.max(1),
            }),
        }
    }

    fn tracks(&self) -> MutexGuard<'_, HashMap<Path, (u64, TrackConsumer)>> {
        self.inner
            .tracks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Publishes `track` until it ends or the session does (spec §7.1).
    pub(super) fn publish(&self, track: TrackConsumer) -> Result<(), Error> {
        let path = track.info().path.clone();
        let id = self
            .inner
            .next_publish
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
                writer.reset(&err);
                reader.stop(&err);
            }
        }
    }

    /// Spec §5.2: the peer's ANNOUNCE_PLEASE, answered with the matching active paths and then
    /// every change, until either side ends the stream.
    async fn serve_announce(&self, writer: &mut Writer, reader: &mut Reader) -> Result<(), Error> {
        let AnnouncePlease { prefix } = reader.decode().await?;
        tracing::debug!(%prefix, "announce requested");

        let mut sources = vec![self.inner.local.subscribe_prefix(prefix.clone())];
        for extra in &self.inner.extra {
            sources.push(extra.subscribe_prefix(prefix.clone()));
        }
        // A path offered by several sources is announced once, and ended with the last one.
        let mut counts: HashMap<Path, usize> = HashMap::new();

        loop {
            let mut events = tokio::select! {
                events = next_events(&mut sources) => events,
                res = reader.closed() => {
                    // The subscriber lost interest; answer its FIN with ours (spec §7.3).
                    res?;
                    return writer.finish();
                }
            };
            if sources.is_empty() {
                return writer.finish();
            }
            // Gather everything already pending, so one write carries the whole update.
            while let Some(more) = next_events(&mut sources).now_or_never() {
                if more.is_empty() {
                    break;
                }
                events.extend(more);
            }

            let mut ended = Vec::new();
            let mut active = Vec::new();
            for event in events {
                match event {
                    Announced::Active(path) => {
                        let count = counts.entry(path.clone()).or_default();
                        *count += 1;
                        if *count == 1 {
                            active.push(path);
                        }
                    }
                    Announced::Ended(path) => {
                        if let Some(count) = counts.get_mut(&path) {
                            *count -= 1;
                            if *count == 0 {
                                counts.remove(&path);
                                ended.push(path);
                            }
                        }
                    }
                }
            }
            // Removals before additions, each in ascending order (spec §5.2).
            ended.sort();
            active.sort();
            let messages: Vec<Announce> = ended
                .into_iter()
                .map(|path| Announce::Ended {
                    suffix: suffix(&path, &prefix),
                })
                .chain(active.into_iter().map(|path| Announce::Active {
                    suffix: suffix(&path, &prefix),
                }))
                .collect();
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
        let serving = Subscription {
            conn: self.inner.conn.clone(),
            id: subscribe.id,
            priority: subscribe.priority,
            order: subscribe.group_order,
            expires,
            max_inflight: self.inner.max_inflight_groups,
            inflight: VecDeque::new(),
            tasks: JoinSet::new(),
            acks: JoinSet::new(),
        };
        serving.run(track, writer, reader).await
    }

    /// Spec §5.4 (as this project defines the reply): the frames of one cached group from
    /// frame `offset`, then FIN.
    async fn serve_fetch(&self, writer: &mut Writer, reader: &mut Reader) -> Result<(), Error> {
        let fetch: Fetch = reader.decode().await?;
        tracing::debug!(path = %fetch.path, group = fetch.group, "fetch");
        let track = self.lookup(&Track::new(fetch.path).with_priority(fetch.priority))?;
        let mut group = track.get_group(fetch.group).ok_or(Error::NotFound)?;
        writer.set_priority(stream_priority(
            fetch.priority,
            GroupOrder::Descending,
            fetch.group,
        ));

        let mut index = 0u64;
        while let Some(mut frame) = group.next_frame().await? {
            if index >= fetch.offset {
                writer.encode(&FrameHeader { size: frame.size() }).await?;
                while let Some(chunk) = frame.read().await? {
                    writer.write_chunk(chunk).await?;
                }
            }
            index += 1;
        }
        if index < fetch.offset {
            return Err(Error::NotFound);
        }
        writer.finish()
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

/// The suffix of `path` after `prefix` (every path a prefixed consumer yields has it).
fn suffix(path: &Path, prefix: &Path) -> Path {
    path.strip_prefix(prefix).unwrap_or_else(|| path.clone())
}

/// Waits until at least one source has an event and returns everything ready; sources that
/// ended are removed. Returns an empty list once no source is left.
async fn next_events(sources: &mut Vec<AnnouncedConsumer>) -> Vec<Announced> {
    futures::future::poll_fn(|cx| {
        let mut events = Vec::new();
        let mut i = 0;
        while i < sources.len() {
            match sources[i].poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    events.push(event);
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

/// One group in flight to the subscriber.
struct InFlight {
    sequence: u64,
    created: Instant,
    abort: AbortHandle,
}

/// The serving side of one subscription.
struct Subscription {
    conn: Connection,
    id: u64,
    priority: i8,
    order: GroupOrder,
    expires: Option<Duration>,
    max_inflight: usize,
    /// Oldest first.
    inflight: VecDeque<InFlight>,
    tasks: JoinSet<(u64, Result<Writer, Error>)>,
    /// Group streams fully written and finished, waiting (bounded) for the peer's
    /// acknowledgement. They no longer count as in flight: a subscriber that keeps up is
    /// never dropped because acknowledgements lag behind short groups.
    acks: JoinSet<()>,
}

impl Subscription {
    async fn run(
        mut self,
        mut track: TrackConsumer,
        writer: &mut Writer,
        reader: &mut Reader,
    ) -> Result<(), Error> {
        let mut track_done = false;
        loop {
            if track_done && self.inflight.is_empty() {
                // Spec §7.3: the track can no longer be served, so the subscription ends,
                // once the last groups arrived, so that the FIN cannot overtake them.
                while self.acks.join_next().await.is_some() {}
                return writer.finish();
            }
            let next_expiry = self
                .expires
                .and_then(|expires| self.inflight.front().map(|g| g.created + expires));

            tokio::select! {
                res = track.next_group(), if !track_done => match res? {
                    Some(group) => self.start_group(group, writer).await?,
                    None => track_done = true,
                },
                Some(res) = self.tasks.join_next() => {
                    let (sequence, result) = match res {
                        Ok(done) => done,
                        Err(_cancelled) => continue,
                    };
                    let Some(pos) = self.inflight.iter().position(|g| g.sequence == sequence) else {
                        continue;
                    };
                    self.inflight.remove(pos);
                    match result {
                        Ok(mut sent) => {
                            self.acks.spawn(async move {
                                let _ = tokio::time::timeout(FINAL_ACK_TIMEOUT, sent.stopped()).await;
                            });
                        }
                        Err(err) => {
                            writer.encode(&GroupDrop { sequence, count: 0, code: err.code() }).await?;
                        }
                    }
                },
                // Forget acknowledged groups.
                Some(_) = self.acks.join_next() => {},
                res = reader.decode_maybe::<SubscribeUpdate>() => match res? {
                    // 0.8.0 never sends updates, and their layout is ambiguous (spec §6.5).
                    Some(update) => tracing::debug!(?update, "subscribe update ignored"),
                    None => {
                        // The subscriber's FIN cancels the subscription (spec §5.3).
                        self.tasks.abort_all();
                        return writer.finish();
                    }
                },
                () = sleep_until(next_expiry), if next_expiry.is_some() => {
                    self.drop_expired(writer).await?;
                },
            }
        }
    }

    fn is_expired(&self, created: Instant) -> bool {
        self.expires
            .is_some_and(|expires| created.elapsed() > expires)
    }

    /// Starts sending `group`, first making room by dropping the oldest in-flight group.
    async fn start_group(
        &mut self,
        group: GroupConsumer,
        writer: &mut Writer,
    ) -> Result<(), Error> {
        let sequence = group.sequence();
        if self.is_expired(group.created()) {
            return writer
                .encode(&GroupDrop {
                    sequence,
                    count: 0,
                    code: Error::Cancel.code(),
                })
                .await;
        }
        while self.inflight.len() >= self.max_inflight {
            let Some(oldest) = self.inflight.pop_front() else {
                break;
            };
            // The subscriber is behind: the oldest group goes so the newest can start.
            oldest.abort.abort();
            tracing::debug!(
                sequence = oldest.sequence,
                "subscriber behind, group dropped"
            );
            writer
                .encode(&GroupDrop {
                    sequence: oldest.sequence,
                    count: 0,
                    code: Error::Cancel.code(),
                })
                .await?;
        }

        let created = group.created();
        let conn = self.conn.clone();
        let priority = stream_priority(self.priority, self.order, sequence);
        let id = self.id;
        let abort = self
            .tasks
            .spawn(async move { (sequence, send_group(conn, id, priority, group).await) });
        self.inflight.push_back(InFlight {
            sequence,
            created,
            abort,
        });
        Ok(())
    }

    async fn drop_expired(&mut self, writer: &mut Writer) -> Result<(), Error> {
        while let Some(front) = self.inflight.front() {
            if !self.is_expired(front.created) {
                break;
            }
            let Some(expired) = self.inflight.pop_front() else {
                break;
            };
            expired.abort.abort();
            writer
                .encode(&GroupDrop {
                    sequence: expired.sequence,
                    count: 0,
                    code: Error::Cancel.code(),
                })
                .await?;
        }
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Aborted group tasks drop their writers, which reset the streams; finished streams
        // are left to complete.
        self.tasks.abort_all();
        self.acks.abort_all();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Sends one group on a uni stream of its own (spec §5.6), returning the finished stream.
async fn send_group(
    conn: Connection,
    subscribe: u64,
    priority: i32,
    mut group: GroupConsumer,
) -> Result<Writer, Error> {
    let mut writer = Writer::new(conn.open_uni().await?);
    writer.set_priority(priority);
    let result = async {
        let header = GroupHeader {
            subscribe,
            sequence: group.sequence(),
        };
        writer.encode2(&UniStream::Group, &header).await?;
        while let Some(mut frame) = group.next_frame().await? {
            writer.encode(&FrameHeader { size: frame.size() }).await?;
            while let Some(chunk) = frame.read().await? {
                writer.write_chunk(chunk).await?;
            }
        }
        writer.finish()
    }
    .await;
    match result {
        Ok(()) => Ok(writer),
        Err(err) => {
            writer.reset(&err);
            Err(err)
        }
    }
}
