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
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
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

/// What one of a subscription's futures came to.
enum Event<'r> {
    /// A group's stream was written, or is done; or its future was given up on.
    Group(Result<GroupEvent, Aborted>),
    /// The track's next group, its end, or its error; with the track, to wait for the next.
    Track(Result<Option<GroupConsumer>, Error>, TrackConsumer),
    /// The subscribe stream's next update, its FIN (a cancel), or its error; with the reader.
    Update(Result<Option<SubscribeUpdate>, Error>, &'r mut Reader),
}

/// One of a subscription's futures: a group's (its stream written, then acknowledged), the
/// track's next group, or the subscribe stream's next update.
type Waiting<'r> = Pin<Box<dyn Future<Output = Event<'r>> + Send + 'r>>;

/// What the serving loop does after an event.
enum Next {
    /// Serving goes on.
    Serve,
    /// The track's next group arrived; it starts once the events ready with it are handled.
    Start(GroupConsumer, TrackConsumer),
    /// The subscriber cancelled: the subscription ends.
    End,
}

/// The serving side of one subscription, reading updates from a subscribe stream that lives
/// for `'r`.
pub(super) struct Subscription<'r> {
    conn: Connection,
    scheduler: Arc<SendScheduler>,
    id: u64,
    priority: i8,
    order: GroupOrder,
    expires: Option<Duration>,
    window: Window,
    /// Groups started and not yet acknowledged, oldest first.
    inflight: VecDeque<InFlight>,
    /// Their futures, and the track's and the subscribe stream's, each polled only when
    /// woken: a frame wakes the writer of its group and nothing else. Dropping a group's
    /// future (the subscription ending) resets its stream.
    waiting: FuturesUnordered<Waiting<'r>>,
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

impl<'r> Subscription<'r> {
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
            waiting: FuturesUnordered::new(),
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
        reader: &'r mut Reader,
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
        reader: &'r mut Reader,
        drops: &mut DropReports<'_>,
    ) -> Result<(), Error> {
        self.waiting.push(next_group(track));
        self.waiting.push(next_update(reader));
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

            let next = tokio::select! {
                biased;
                Some(event) = self.waiting.next() => self.handle(event, drops, &mut track_done)?,
                // Polled only while a report is being written.
                res = std::future::poll_fn(|cx| drops.poll_written(cx)), if drops.is_writing() => {
                    res?;
                    Next::Serve
                },
                () = &mut expiry, if armed.is_some() => {
                    armed = None;
                    self.drop_stale(drops);
                    Next::Serve
                },
                // Not reached: the subscribe stream's future stays in the set until the
                // subscription ends.
                else => Next::End,
            };
            match next {
                Next::Serve => {}
                Next::Start(group, track) => {
                    // Groups written or delivered meanwhile free their room before the new
                    // one starts (the track's future is out of the set until then).
                    while let Some(Some(event)) = self.waiting.next().now_or_never() {
                        if let Next::End = self.handle(event, drops, &mut track_done)? {
                            return Ok(());
                        }
                    }
                    self.waiting.push(next_group(track));
                    self.start_group(group, drops);
                }
                Next::End => return Ok(()),
            }
        }
    }

    /// Handles what one of the subscription's futures came to.
    fn handle(
        &mut self,
        event: Event<'r>,
        drops: &mut DropReports<'_>,
        track_done: &mut bool,
    ) -> Result<Next, Error> {
        match event {
            Event::Group(event) => self.progress(event, drops),
            Event::Track(Ok(Some(group)), track) => return Ok(Next::Start(group, track)),
            Event::Track(Ok(None), _) => *track_done = true,
            // The track's end, or the subscribe stream's: the subscription is over. Whatever
            // is still in flight is reset (by dropping `self`).
            Event::Track(Err(err), _) | Event::Update(Err(err), _) => return Err(err),
            // 0.8.0 never sends updates, and their layout is ambiguous (spec §6.5).
            Event::Update(Ok(Some(update)), reader) => {
                tracing::debug!(?update, "subscribe update ignored");
                self.waiting.push(next_update(reader));
            }
            // The subscriber's FIN cancels the subscription (spec §5.3).
            Event::Update(Ok(None), _) => return Ok(Next::End),
        }
        Ok(Next::Serve)
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
                    self.waiting.push(Box::pin(
                        Abortable::new(stream.acknowledged(id), registration).map(Event::Group),
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
        self.waiting.push(Box::pin(
            Abortable::new(sender.run(conn, group, reported), registration).map(Event::Group),
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

/// The track's next group, its end, or its error.
fn next_group<'r>(mut track: TrackConsumer) -> Waiting<'r> {
    Box::pin(async move { Event::Track(track.next_group().await, track) })
}

/// The subscribe stream's next update, its FIN, or its error.
fn next_update(reader: &mut Reader) -> Waiting<'_> {
    Box::pin(async move { Event::Update(reader.decode_maybe::<SubscribeUpdate>().await, reader) })
}
