//! The publisher side of one subscription (spec §5.3): group streams in flight, their
//! priorities, expiry, and what happens when the subscriber falls behind.
//!
//! One task serves a subscription: it drives the writers of its groups itself, as futures
//! each woken on its own (a [`FuturesUnordered`]), so a frame wakes only the writer of its
//! group and no group costs a spawn.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{AbortHandle, Abortable, Aborted};
use futures::stream::{self, BoxStream, FuturesUnordered, SelectAll};
use futures::StreamExt;
use tokio::time::Instant;

use super::drop_reports::DropReports;
use super::group_stream::{GroupEvent, GroupSender};
use super::priority::{started_priority, stream_priority};
use super::schedule::{SendScheduler, WriteClass};
use super::stream::{Reader, Writer};
use super::SessionStats;
use crate::message::{Subscribe, SubscribeUpdate};
use crate::model::{GroupConsumer, TrackConsumer};
use crate::transport::Connection;
use crate::{Error, GroupOrder};

/// How long a finished subscription waits for its last group streams to be acknowledged, and
/// for its pending GROUP_DROPs to be written, before it FINs the subscribe stream.
pub(super) const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// One group in flight to the subscriber.
struct InFlight {
    /// Unique within the subscription: after a handover, sequences may repeat.
    id: u64,
    sequence: u64,
    created: Instant,
    /// Completely written: it only waits for the peer's acknowledgement.
    written: bool,
    /// When a newer group arrived while this one was still being written (descending order
    /// only): it has [`Window::lag`] from then to finish.
    overtaken: Option<Instant>,
    /// Drops the group's future, which resets its stream.
    abort: AbortHandle,
    /// Payload bytes its future has written so far.
    bytes: Arc<AtomicU64>,
}

/// A group's future: its stream written, then acknowledged.
type GroupFuture = Abortable<Pin<Box<dyn Future<Output = GroupEvent> + Send>>>;

/// What the subscription waits for besides its groups, each woken on its own.
enum Control {
    /// The track's next group, its end, or its error.
    Group(Result<Option<GroupConsumer>, Error>),
    /// The subscribe stream's next update, its FIN (a cancel), or its error.
    Update(Result<Option<SubscribeUpdate>, Error>),
}

/// The serving side of one subscription.
pub(super) struct Subscription {
    conn: Connection,
    scheduler: Arc<SendScheduler>,
    id: u64,
    priority: i8,
    order: GroupOrder,
    expires: Option<Duration>,
    window: Window,
    /// Groups started and not yet acknowledged, oldest first.
    inflight: VecDeque<InFlight>,
    /// Their futures; dropping one (the subscription ending) resets its stream.
    groups: FuturesUnordered<GroupFuture>,
    /// The id of the next group to start.
    next_id: u64,
    stats: Arc<SessionStats>,
}

/// How much of one subscription may be in flight to the subscriber, checked when a newer
/// group starts: older groups go until the rest fit.
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    /// Groups not yet completely written to the transport (at least 1). Written groups do
    /// not count: at a long round trip many small ones await acknowledgement at once.
    pub(super) groups: usize,
    /// Payload bytes of the groups not yet acknowledged (or given up on): what the
    /// transport's send buffer holds on the subscription's behalf.
    pub(super) bytes: u64,
    /// How long a group may still be written once a newer one arrived (descending order).
    pub(super) lag: Duration,
}

impl Subscription {
    pub(super) fn new(
        conn: Connection,
        scheduler: Arc<SendScheduler>,
        subscribe: &Subscribe,
        expires: Option<Duration>,
        window: Window,
        stats: Arc<SessionStats>,
    ) -> Self {
        Self {
            conn,
            scheduler,
            id: subscribe.id,
            priority: subscribe.priority,
            order: subscribe.group_order,
            expires,
            window: Window {
                groups: window.groups.max(1),
                ..window
            },
            inflight: VecDeque::new(),
            groups: FuturesUnordered::new(),
            next_id: 0,
            stats,
        }
    }

    /// Serves groups until the track ends, the subscriber cancels, or an error; INFO has
    /// already been written. GROUP_DROPs are written as the serving goes, never waited on, so
    /// a subscribe stream blocked by a stalled peer never stalls the serving.
    pub(super) async fn run(
        self,
        track: TrackConsumer,
        writer: &mut Writer,
        reader: &mut Reader,
    ) -> Result<(), Error> {
        let mut drops = DropReports::new(writer);
        self.serve(track, reader, &mut drops).await?;
        // Let the last reports out, within bounds, before the FIN. A write cut short may have
        // left half a message: then only a reset is correct.
        tokio::time::timeout(FINAL_FLUSH_TIMEOUT, drops.flush())
            .await
            .map_err(|_| Error::timeout("the last writes of a subscribe stream"))??;
        writer.finish()
    }

    async fn serve(
        mut self,
        track: TrackConsumer,
        reader: &mut Reader,
        drops: &mut DropReports<'_>,
    ) -> Result<(), Error> {
        // Polled only when woken: a frame for a group does not poll the track or the reader.
        let mut control: SelectAll<BoxStream<'_, Control>> =
            stream::select_all([track_groups(track), updates(reader)]);
        let mut track_done = false;
        // Re-armed only when the oldest group in flight changes, not on every wake.
        let expiry = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(expiry);
        let mut armed = None;

        loop {
            if track_done && self.inflight.is_empty() {
                // Spec §7.3: the track can no longer be served, so the subscription ends.
                return Ok(());
            }
            let next_expiry = self.next_deadline();
            if next_expiry != armed {
                if let Some(deadline) = next_expiry {
                    expiry.as_mut().reset(deadline);
                }
                armed = next_expiry;
            }

            tokio::select! {
                // Groups written or delivered meanwhile free their room before a new one
                // starts.
                biased;
                Some(event) = self.groups.next(), if !self.groups.is_empty() => {
                    self.progress(event, drops);
                },
                // Polled only while a report is being written.
                res = std::future::poll_fn(|cx| drops.poll_written(cx)), if drops.is_writing() => {
                    res?;
                },
                Some(event) = control.next() => match event {
                    Control::Group(Ok(Some(group))) => self.start_group(group, drops),
                    Control::Group(Ok(None)) => track_done = true,
                    // The track's end, or the subscribe stream's: the subscription is over.
                    // Whatever is still in flight is reset (by dropping `self`).
                    Control::Group(Err(err)) | Control::Update(Err(err)) => return Err(err),
                    // 0.8.0 never sends updates, and their layout is ambiguous (spec §6.5).
                    Control::Update(Ok(Some(update))) => {
                        tracing::debug!(?update, "subscribe update ignored");
                    }
                    // The subscriber's FIN cancels the subscription (spec §5.3).
                    Control::Update(Ok(None)) => return Ok(()),
                },
                () = &mut expiry, if armed.is_some() => {
                    armed = None;
                    self.drop_stale(drops);
                },
            }
        }
    }

    /// A group's future made progress (an aborted one was already forgotten). Groups are
    /// found by id: a sequence may be in flight twice after a handover.
    fn progress(&mut self, event: Result<GroupEvent, Aborted>, drops: &mut DropReports<'_>) {
        let (id, result) = match event {
            Ok(GroupEvent::Written(id, stream)) => {
                if let Some(group) = self.inflight.iter_mut().find(|g| g.id == id) {
                    group.written = true;
                    let (abort, registration) = AbortHandle::new_pair();
                    group.abort = abort;
                    self.groups.push(Abortable::new(
                        Box::pin(stream.acknowledged(id)),
                        registration,
                    ));
                }
                return;
            }
            Ok(GroupEvent::Done(id, result)) => (id, result),
            Err(Aborted) => return,
        };
        let Some(pos) = self.inflight.iter().position(|g| g.id == id) else {
            return;
        };
        if let (Some(group), Err(err)) = (self.inflight.remove(pos), result) {
            drops.report(group.sequence, &err);
        }
    }

    /// When the next group in flight expires or has lagged too long, if any will.
    fn next_deadline(&self) -> Option<Instant> {
        // A duration the peer chose: one too large to add means never. Groups are in the
        // order they started, so the front one expires first, and the first one overtaken
        // was overtaken first.
        let expiry = self.expires.and_then(|expires| {
            self.inflight
                .front()
                .and_then(|g| g.created.checked_add(expires))
        });
        let lag = self
            .inflight
            .iter()
            .filter(|g| !g.written)
            .find_map(|g| g.overtaken)
            .and_then(|overtaken| overtaken.checked_add(self.window.lag));
        expiry.into_iter().chain(lag).min()
    }

    /// Whether `group` is still being written [`Window::lag`] or more after a newer group
    /// arrived. At the deadline itself it has lagged too long, as [`Self::is_expired`] says.
    fn has_lagged(&self, group: &InFlight, now: Instant) -> bool {
        !group.written
            && group.overtaken.is_some_and(|overtaken| {
                now.saturating_duration_since(overtaken) >= self.window.lag
            })
    }

    /// Whether a group created at `created` is at least `expires` old. At the deadline itself it
    /// is expired: the expiry timer fires then, and a group it did not drop would re-arm the
    /// timer for a deadline already reached, a busy loop while the clock stands still.
    fn is_expired(&self, created: Instant) -> bool {
        self.expires
            .is_some_and(|expires| created.elapsed() >= expires)
    }

    /// Starts sending `group`, first making room by dropping the oldest in-flight group.
    fn start_group(&mut self, group: GroupConsumer, drops: &mut DropReports<'_>) {
        let sequence = group.sequence();
        if self.is_expired(group.created()) {
            drops.report(sequence, &Error::Cancel);
            return;
        }
        let mut dropped_any = false;
        loop {
            // Past the byte window, the oldest group goes, written or not: it holds the
            // transport's send buffer. But one group alone is no backlog, however large: the
            // next group does not cut it short (at 20 Mb/s a 2 s group is 5 MB, and its last
            // frame is often still being written when the next group begins); if it lags,
            // the lag bound drops it. Past the group window, the oldest still being written
            // goes.
            let writing = self.inflight.iter().filter(|g| !g.written).count();
            // Counted afresh after each drop: a group given up on no longer counts, though
            // its future resets its stream only when next polled.
            let bytes: u64 = self
                .inflight
                .iter()
                .map(|g| g.bytes.load(Ordering::Relaxed))
                .sum();
            let victim = if bytes > self.window.bytes && self.inflight.len() > 1 {
                Some(0)
            } else if writing >= self.window.groups {
                self.inflight.iter().position(|g| !g.written)
            } else {
                None
            };
            let Some(oldest) = victim.and_then(|pos| self.inflight.remove(pos)) else {
                break;
            };
            // The subscriber is behind: the oldest group goes so the newest can start.
            tracing::debug!(
                sequence = oldest.sequence,
                writing,
                bytes,
                "subscriber behind, group dropped"
            );
            self.cancel(oldest, drops);
            dropped_any = true;
        }

        if self.order == GroupOrder::Descending {
            let now = Instant::now();
            for older in self.inflight.iter_mut().filter(|g| !g.written) {
                older.overtaken.get_or_insert(now);
            }
        }

        let priority = stream_priority(self.priority, self.order, sequence);
        let id = self.next_id;
        self.next_id += 1;
        let sender = GroupSender {
            id,
            subscribe: self.id,
            class: WriteClass {
                priority: self.priority,
                subscription: Some(self.id),
                rank: priority,
                start: Some(started_priority(self.priority, sequence)),
            },
            scheduler: self.scheduler.clone(),
            bytes: Arc::default(),
            stats: self.stats.clone(),
        };
        let bytes = sender.bytes.clone();
        // After a drop, the reports go first (see `DropReports::flushed`).
        let reported = dropped_any.then(|| drops.flushed());
        let (abort, registration) = AbortHandle::new_pair();
        let created = group.created();
        let conn = self.conn.clone();
        self.groups.push(Abortable::new(
            Box::pin(sender.run(conn, group, reported)),
            registration,
        ));
        self.inflight.push_back(InFlight {
            id,
            sequence,
            created,
            written: false,
            overtaken: None,
            abort,
            bytes,
        });
    }

    /// Drops the groups that expired or lagged too long behind a newer one.
    fn drop_stale(&mut self, drops: &mut DropReports<'_>) {
        let now = Instant::now();
        let inflight = std::mem::take(&mut self.inflight);
        for group in inflight {
            if self.is_expired(group.created) || self.has_lagged(&group, now) {
                tracing::debug!(sequence = group.sequence, "stale group dropped");
                self.cancel(group, drops);
            } else {
                self.inflight.push_back(group);
            }
        }
    }

    /// Gives up on an in-flight group. Its future is dropped, resetting the stream, the next
    /// time the groups are polled, before a group started after this call writes anything:
    /// they run in the order they were woken.
    fn cancel(&mut self, group: InFlight, drops: &mut DropReports<'_>) {
        group.abort.abort();
        self.stats.group_dropped();
        drops.report(group.sequence, &Error::Cancel);
    }
}

/// The track's groups, as [`Control`] events, until its end or error.
fn track_groups<'a>(track: TrackConsumer) -> BoxStream<'a, Control> {
    stream::unfold(Some(track), |track| async move {
        let mut track = track?;
        let next = track.next_group().await;
        let more = matches!(next, Ok(Some(_)));
        Some((Control::Group(next), more.then_some(track)))
    })
    .boxed()
}

/// The subscribe stream's updates, as [`Control`] events, until its FIN or error.
fn updates(reader: &mut Reader) -> BoxStream<'_, Control> {
    stream::unfold(Some(reader), |reader| async move {
        let reader = reader?;
        let next = reader.decode_maybe::<SubscribeUpdate>().await;
        let more = matches!(next, Ok(Some(_)));
        Some((Control::Update(next), more.then_some(reader)))
    })
    .boxed()
}
