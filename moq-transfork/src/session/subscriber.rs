//! The subscriber half of a session: subscriptions (one per path), announce, info and fetch
//! requests, and the group streams the peer sends (spec §5.2–§5.6).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::recv::{read_frames, GroupLimits, RecvBudget};
use super::stream::{Reader, Writer};
use super::SessionOptions;
use crate::message::{
    Announce, AnnouncePlease, BiStream, Fetch, GroupDrop, GroupHeader, Info, InfoRequest,
    Subscribe, UniStream,
};
use crate::model::{
    AnnouncedConsumer, AnnouncedProducer, CacheConfig, GroupConsumer, Track, TrackConsumer,
    TrackProducer,
};
use crate::transport::Connection;
use crate::{Error, Path};

/// The most paths one announce stream may hold active; a peer announcing more has the stream
/// reset with [`Error::ProtocolViolation`] (and, on a relay, its paths withdrawn).
const MAX_ANNOUNCED_PATHS: usize = 65_536;

/// How long group streams of a subscription the publisher has ended are still accepted: its
/// last groups may be processed after the FIN of the subscribe stream.
const ENDED_GRACE: Duration = Duration::from_millis(250);

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
    next_id: AtomicU64,
    state: Mutex<State>,
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
                cache: options.cache,
                max_frame_size: options.max_frame_size,
                max_group_size: options.max_group_size,
                recv: Arc::new(RecvBudget::new(options.max_recv_bytes)),
                linger: options.linger,
                next_id: AtomicU64::new(0),
                state: Mutex::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
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
        let (producer, consumer) = track.clone().produce_with(self.inner.cache);
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
        let result = self
            .subscribe_stream(id, &track, &producer, &mut stream)
            .await;

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
            res = reader.decode::<Info>() => res?,
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
                reader.stop(&err);
                return;
            }
        };
        let sequence = group.sequence();
        let limits = GroupLimits {
            max_frame_size: self.inner.max_frame_size,
            max_group_size: self.inner.max_group_size,
            budget: self.inner.cache.budget,
            recv: self.inner.recv.clone(),
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
                reader.stop(&err);
                group.close(err);
            }
        }
    }

    pub(super) fn announced(&self, prefix: Path) -> AnnouncedConsumer {
        let producer = AnnouncedProducer::new();
        let consumer = producer.subscribe_prefix(prefix.clone());
        let conn = self.inner.conn.clone();
        tokio::spawn(async move {
            let mut stream = None;
            match announced_stream(&conn, &prefix, &producer, &mut stream).await {
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

    pub(super) async fn info(&self, path: Path) -> Result<Info, Error> {
        let (send, recv) = self.inner.conn.open_bi().await?;
        let (mut writer, mut reader) = (Writer::control(send), Reader::new(recv));
        writer
            .encode2(&BiStream::Info, &InfoRequest { path })
            .await?;
        let info = reader.decode().await?;
        writer.finish()?;
        Ok(info)
    }

    pub(super) fn fetch(
        &self,
        path: Path,
        priority: i8,
        sequence: u64,
        offset: u64,
    ) -> Result<GroupConsumer, Error> {
        // A detached group: the track exists only to create it.
        let (track, _) = Track::new(path.clone()).produce();
        let mut group = track.create_group(sequence)?;
        let consumer = group.subscribe();
        let conn = self.inner.conn.clone();
        let limits = GroupLimits {
            max_frame_size: self.inner.max_frame_size,
            max_group_size: self.inner.max_group_size,
            budget: None,
            recv: self.inner.recv.clone(),
        };
        tokio::spawn(async move {
            let request = Fetch {
                path,
                priority,
                group: sequence,
                offset,
            };
            let result = async {
                let (send, recv) = conn.open_bi().await?;
                let (mut writer, mut reader) = (Writer::control(send), Reader::new(recv));
                writer.encode2(&BiStream::Fetch, &request).await?;
                writer.finish()?;
                // A fetched group belongs to no cache: only the consumer holds it.
                let never = std::future::pending();
                let result = read_frames(&mut reader, &mut group, &limits, never).await;
                if let Err(err) = &result {
                    reader.stop(err);
                }
                result
            }
            .await;
            match result {
                Ok(()) => group.finish(),
                Err(err) => group.close(err),
            }
        });
        Ok(consumer)
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

async fn announced_stream(
    conn: &Connection,
    prefix: &Path,
    producer: &AnnouncedProducer,
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
    let mut active = 0usize;
    loop {
        let announce = tokio::select! {
            res = reader.decode_maybe::<Announce>() => match res? {
                Some(announce) => announce,
                None => break,
            },
            () = producer.unused() => {
                // Nobody follows these announcements any more: end the stream (spec §7.3).
                writer.finish()?;
                reader.stop(&Error::Cancel);
                return Ok(());
            }
        };
        match announce {
            Announce::Active { suffix } => {
                if active >= MAX_ANNOUNCED_PATHS {
                    return Err(Error::ProtocolViolation);
                }
                // Spec §5.2: `active` for a path already active is Duplicate.
                if !producer.announce(prefix.clone().append(&suffix)) {
                    return Err(Error::Duplicate);
                }
                active += 1;
            }
            Announce::Ended { suffix } => {
                if !producer.unannounce(&prefix.clone().append(&suffix)) {
                    return Err(Error::NotFound);
                }
                active -= 1;
            }
            Announce::Live => {}
        }
    }
    // The publisher finished: finish ours too.
    writer.finish()
}
