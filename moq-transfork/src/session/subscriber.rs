//! The subscriber half of a session: subscriptions (one per path), announce, info and fetch
//! requests, and the group streams the peer sends (spec §5.2–§5.6).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::fetched::FetchedGroup;
use super::recv::{read_frames, GroupLimits, RecvBudget};
use super::stream::{Reader, Writer};
use super::{SessionOptions, SessionStats};
use crate::message::{
    Announce, AnnouncePlease, BiStream, Fetch, GroupDrop, GroupHeader, Info, InfoRequest,
    Subscribe, UniStream,
};
use crate::model::{
    AnnouncedConsumer, AnnouncedProducer, CacheConfig, Track, TrackConsumer, TrackProducer,
};
use crate::sync::lock;
use crate::transport::Connection;
use crate::{Error, Path};

/// How long group streams of a subscription the publisher has ended are still accepted: its
/// last groups may be processed after the FIN of the subscribe stream.
const ENDED_GRACE: Duration = Duration::from_millis(250);

/// How long the peer may take to answer a SUBSCRIBE or an INFO request with INFO. Past it, the
/// request fails with [`Error::Transport`] (code 4) and its stream is reset and stopped with
/// that code, so a peer that never answers cannot hold a request (or, on a relay, the
/// subscribers of a path) forever.
const INFO_TIMEOUT: Duration = Duration::from_secs(10);

/// The error of a request whose INFO did not come within [`INFO_TIMEOUT`].
fn info_timed_out() -> Error {
    Error::timeout("the INFO reply")
}

/// The subscriber half; cheap to clone.
#[derive(Clone)]
pub(super) struct Subscriber {
    inner: Arc<SubscriberInner>,
}

struct SubscriberInner {
    conn: Connection,
    cache: CacheConfig,
    max_frame_size: u64,
    max_group_size: u64,
    /// What the peer's unfinished groups hold, shared by its group streams and fetches.
    recv: Arc<RecvBudget>,
    linger: Duration,
    /// [`SessionOptions::max_announced_paths`], and the paths held active now.
    max_announced_paths: usize,
    announced_paths: Arc<AtomicUsize>,
    next_id: AtomicU64,
    state: Mutex<State>,
    stats: Arc<SessionStats>,
}

#[derive(Default)]
struct State {
    /// Live subscriptions by path, for deduplication (spec §7.2).
    by_path: HashMap<Path, (u64, TrackProducer)>,
    /// Subscriptions by id, to route group streams.
    by_id: HashMap<u64, TrackProducer>,
    /// Set once the session has ended.
    closed: Option<Error>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("subscriptions", &self.state().by_id.len())
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    pub(super) fn new(conn: Connection, options: &SessionOptions) -> Self {
        Self {
            inner: Arc::new(SubscriberInner {
                conn,
                cache: options.cache.clone(),
                max_frame_size: options.max_frame_size,
                max_group_size: options.max_group_size,
                recv: Arc::new(RecvBudget::new(options.max_recv_bytes)),
                linger: options.linger,
                max_announced_paths: options.max_announced_paths,
                announced_paths: Arc::default(),
                next_id: AtomicU64::new(0),
                state: Mutex::default(),
                stats: options.stats.clone(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// Ends every subscription with `err`; later subscriptions fail at once.
    pub(super) fn close(&self, err: Error) {
        let mut state = self.state();
        state.closed = Some(err.clone());
        state.by_path.clear();
        for (_, producer) in state.by_id.drain() {
            producer.close(err.clone());
        }
    }

    pub(super) fn subscribe(&self, track: Track) -> TrackConsumer {
        let mut state = self.state();
        if let Some((_, producer)) = state.by_path.get(&track.path) {
            if !producer.is_closed() {
                return producer.subscribe();
            }
        }
        let (producer, consumer) = track.clone().produce_with(self.inner.cache.clone());
        if let Some(err) = &state.closed {
            producer.close(err.clone());
            return consumer;
        }
        // Spec §5.3: ids count up from 0, one per subscription that goes on the wire.
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        state
            .by_path
            .insert(track.path.clone(), (id, producer.clone()));
        state.by_id.insert(id, producer.clone());
        drop(state);

        let this = self.clone();
        tokio::spawn(async move { this.run_subscribe(id, track, producer).await });
        consumer
    }

    async fn run_subscribe(self, id: u64, track: Track, producer: TrackProducer) {
        tracing::debug!(id, path = %track.path, "subscribe");
        let mut stream = None;
        let open = self.inner.stats.upstream();
        let result = self
            .subscribe_stream(id, &track, &producer, &mut stream)
            .await;
        drop(open);

        // Remove the subscription from the dedup table first, so a new subscribe starts
        // afresh; group streams of this id are still accepted for a moment (ENDED_GRACE).
        {
            let mut state = self.state();
            if state
                .by_path
                .get(&track.path)
                .is_some_and(|(current, _)| *current == id)
            {
                state.by_path.remove(&track.path);
            }
        }
        match result {
            Ok(Ended::Unsubscribed) => {
                self.state().by_id.remove(&id);
            }
            Ok(Ended::ByPublisher) => {
                tracing::debug!(id, path = %track.path, "subscription ended by publisher");
                tokio::time::sleep(ENDED_GRACE).await;
                self.state().by_id.remove(&id);
            }
            Err(err) => {
                tracing::debug!(id, path = %track.path, %err, "subscription failed");
                self.inner.stats.reset(&err);
                if let Some((writer, reader)) = stream.as_mut() {
                    writer.reset(&err);
                    reader.stop(&err);
                }
                self.state().by_id.remove(&id);
                producer.close(err);
            }
        }
    }

    async fn subscribe_stream(
        &self,
        id: u64,
        track: &Track,
        producer: &TrackProducer,
        stream: &mut Option<(Writer, Reader)>,
    ) -> Result<Ended, Error> {
        let (send, recv) = self.inner.conn.open_bi().await?;
        let (writer, reader) = stream.insert((Writer::control(send), Reader::new(recv)));
        let subscribe = Subscribe {
            id,
            path: track.path.clone(),
            priority: track.priority,
            group_order: track.group_order,
            group_expires: track.group_expires,
            group_min: None,
            group_max: None,
        };
        writer.encode2(&BiStream::Subscribe, &subscribe).await?;

        // One future for the whole subscription, so messages from the publisher do not restart
        // the linger timer.
        let unused = self.unused(producer, &track.path, id);
        tokio::pin!(unused);
        let info = tokio::select! {
            res = tokio::time::timeout(INFO_TIMEOUT, reader.decode::<Info>()) => {
                res.map_err(|_| info_timed_out())??
            }
            () = &mut unused => return unsubscribe(writer, reader),
        };
        tracing::debug!(id, ?info, "subscribe info");
        loop {
            tokio::select! {
                res = reader.decode_maybe::<GroupDrop>() => match res? {
                    Some(drop) => tracing::debug!(id, ?drop, "groups dropped by publisher"),
                    None => {
                        // The publisher ended the subscription: finish ours (spec §7.3).
                        writer.finish()?;
                        return Ok(Ended::ByPublisher);
                    }
                },
                () = &mut unused => return unsubscribe(writer, reader),
            }
        }
    }

    /// Resolves when the subscription has had no consumer for `linger`, having removed it from
    /// the dedup table under the same lock that `subscribe` takes, so no consumer can join a
    /// subscription that is going away.
    async fn unused(&self, producer: &TrackProducer, path: &Path, id: u64) {
        loop {
            producer.unused().await;
            if !self.inner.linger.is_zero() {
                tokio::time::sleep(self.inner.linger).await;
            }
            let mut state = self.state();
            if producer.consumer_count() == 0 {
                if state
                    .by_path
                    .get(path)
                    .is_some_and(|(current, _)| *current == id)
                {
                    state.by_path.remove(path);
                }
                return;
            }
        }
    }

    /// Serves one uni stream opened by the peer: a group of one of our subscriptions.
    pub(super) async fn recv_stream(self, mut reader: Reader) {
        let result = async {
            match reader.decode::<UniStream>().await? {
                UniStream::Group => {}
            }
            let header: GroupHeader = reader.decode().await?;
            tracing::trace!(
                subscribe = header.subscribe,
                sequence = header.sequence,
                "group stream"
            );
            let producer = self.state().by_id.get(&header.subscribe).cloned();
            // Spec §15.7: a group of an unknown or cancelled subscription is stopped with Cancel.
            let producer = producer.ok_or(Error::Cancel)?;
            let group = producer.create_group(header.sequence).map_err(|err| {
                tracing::debug!(sequence = header.sequence, %err, "group refused");
                Error::Cancel
            })?;
            // Holding the producer would keep the track open; a handle does not.
            Ok((group, producer.handle()))
        }
        .await;
        let (mut group, track) = match result {
            Ok(found) => found,
            Err(err) => {
                self.inner.stats.reset(&err);
                reader.stop(&err);
                return;
            }
        };
        self.inner.stats.group_received();
        let sequence = group.sequence();
        let limits = GroupLimits {
            max_frame_size: self.inner.max_frame_size,
            max_group_size: self.inner.max_group_size,
            budget: self.inner.cache.budget.clone(),
            recv: self.inner.recv.clone(),
            stats: self.inner.stats.clone(),
        };
        // A group that left the cache (evicted, expired, or its track closed) can reach no new
        // consumer, and its bytes count towards no cache: stop reading it rather than buffer
        // bytes nobody accounts for. It may have left before we got here.
        if !track.is_cached(sequence) {
            reader.stop(&Error::Cancel);
            group.close(Error::Cancel);
            return;
        }
        let uncached = group.uncached();
        match read_frames(&mut reader, &mut group, &limits, uncached).await {
            Ok(()) => group.finish(),
            Err(err) => {
                self.inner.stats.reset(&err);
                reader.stop(&err);
                group.close(err);
            }
        }
    }

    pub(super) fn announced(&self, prefix: Path) -> AnnouncedConsumer {
        let producer = AnnouncedProducer::new();
        let consumer = producer.subscribe_prefix(prefix.clone());
        let conn = self.inner.conn.clone();
        let mut paths = AnnouncedPaths {
            total: self.inner.announced_paths.clone(),
            max: self.inner.max_announced_paths,
            held: 0,
        };
        tokio::spawn(async move {
            let mut stream = None;
            let result = announced_stream(&conn, &prefix, &producer, &mut paths, &mut stream);
            match result.await {
                Ok(()) => {}
                Err(err) => {
                    tracing::debug!(%prefix, %err, "announce stream failed");
                    if let Some((writer, reader)) = stream.as_mut() {
                        writer.reset(&err);
                        reader.stop(&err);
                    }
                }
            }
            // Dropping the producer ends every path still active for the consumer.
        });
        consumer
    }

    /// An INFO request: the whole exchange is bounded by [`INFO_TIMEOUT`].
    pub(super) async fn info(&self, path: Path) -> Result<Info, Error> {
        let mut stream = None;
        let request = async {
            let (send, recv) = self.inner.conn.open_bi().await?;
            let (writer, reader) = stream.insert((Writer::control(send), Reader::new(recv)));
            writer
                .encode2(&BiStream::Info, &InfoRequest { path })
                .await?;
            let info = reader.decode().await?;
            writer.finish()?;
            Ok(info)
        };
        let result = tokio::time::timeout(INFO_TIMEOUT, request)
            .await
            .unwrap_or_else(|_| Err(info_timed_out()));
        if let (Err(err), Some((writer, reader))) = (&result, stream.as_mut()) {
            writer.reset(err);
            reader.stop(err);
        }
        result
    }

    /// A FETCH, read into a detached group until the peer finishes it or the returned handle
    /// is dropped.
    pub(super) fn fetch(
        &self,
        path: Path,
        priority: i8,
        sequence: u64,
        offset: u64,
    ) -> Result<FetchedGroup, Error> {
        let request = Fetch {
            path,
            priority,
            group: sequence,
            offset,
        };
        let limits = GroupLimits {
            max_frame_size: self.inner.max_frame_size,
            max_group_size: self.inner.max_group_size,
            budget: None,
            recv: self.inner.recv.clone(),
            stats: self.inner.stats.clone(),
        };
        FetchedGroup::spawn(self.inner.conn.clone(), request, limits)
    }
}

/// Unsubscribes (spec §5.3): FIN, and stop reading.
fn unsubscribe(writer: &mut Writer, reader: &mut Reader) -> Result<Ended, Error> {
    writer.finish()?;
    reader.stop(&Error::Cancel);
    Ok(Ended::Unsubscribed)
}

/// How a subscription ended without error.
enum Ended {
    /// Every consumer went away and we finished the stream.
    Unsubscribed,
    /// The publisher finished the stream: the track is over.
    ByPublisher,
}

/// The paths one announce stream holds, counted against the session's
/// [`SessionOptions::max_announced_paths`]; given back when the stream ends.
struct AnnouncedPaths {
    total: Arc<AtomicUsize>,
    max: usize,
    held: usize,
}

impl AnnouncedPaths {
    /// Counts one more path, or fails with [`Error::BoundsExceeded`] at the cap.
    fn take(&mut self) -> Result<(), Error> {
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::BoundsExceeded);
        }
        self.held += 1;
        Ok(())
    }

    /// Gives one path back.
    fn release(&mut self) {
        self.held -= 1;
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for AnnouncedPaths {
    fn drop(&mut self) {
        self.total.fetch_sub(self.held, Ordering::Relaxed);
    }
}

async fn announced_stream(
    conn: &Connection,
    prefix: &Path,
    producer: &AnnouncedProducer,
    paths: &mut AnnouncedPaths,
    stream: &mut Option<(Writer, Reader)>,
) -> Result<(), Error> {
    let (send, recv) = conn.open_bi().await?;
    let (writer, reader) = stream.insert((Writer::control(send), Reader::new(recv)));
    writer
        .encode2(
            &BiStream::Announce,
            &AnnouncePlease {
                prefix: prefix.clone(),
            },
        )
        .await?;
    loop {
        let announce = tokio::select! {
            res = reader.decode_maybe::<Announce>() => match res? {
                Some(announce) => announce,
                None => break,
            },
            () = producer.unused() => {
                // Refused (a cap of the consumer's): reset the stream with its code.
                if let Some(err) = producer.refusal() {
                    return Err(err);
                }
                // Nobody follows these announcements any more: end the stream (spec §7.3).
                writer.finish()?;
                reader.stop(&Error::Cancel);
                return Ok(());
            }
        };
        match announce {
            Announce::Active { suffix } => {
                paths.take()?;
                // Spec §5.2: `active` for a path already active is Duplicate.
                if !producer.announce(prefix.clone().append(&suffix)) {
                    return Err(Error::Duplicate);
                }
            }
            Announce::Ended { suffix } => {
                if !producer.unannounce(&prefix.clone().append(&suffix)) {
                    return Err(Error::NotFound);
                }
                paths.release();
            }
            Announce::Live => {}
        }
    }
    // The publisher finished: finish ours too.
    writer.finish()
}
