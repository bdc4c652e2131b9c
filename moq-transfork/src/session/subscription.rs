//! The publisher side of one subscription (spec §5.3): group streams in flight, their
//! priorities, expiry, and what happens when the subscriber falls behind.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::priority::{started_priority, stream_priority};
use super::schedule::{send_frame, SendScheduler, WriteClass};
use super::stream::{Reader, Writer};
use super::SessionStats;
use crate::message::{GroupDrop, GroupHeader, Subscribe, SubscribeUpdate, UniStream};
use crate::model::{GroupConsumer, TrackConsumer};
use crate::transport::Connection;
use crate::{Error, GroupOrder};

/// How long a finished subscription waits for its last group streams to be acknowledged, and
/// for its pending GROUP_DROPs to be written, before it FINs the subscribe stream.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// GROUP_DROP messages waiting to be written. A subscriber too slow to take even these only
/// misses some reports (they are advisory; spec §15.7): the serving loop never waits on them.
const MAX_PENDING_DROPS: usize = 64;

/// How long a new group waits for queued GROUP_DROPs to be written first. Without it the new
/// group's data takes the connection's send window that the dropped group just freed, and the
/// reports of a stalled subscriber would never leave.
const REPORT_FLUSH_TIMEOUT: Duration = Duration::from_millis(100);

/// One group in flight to the subscriber.
struct InFlight {
    /// Unique within the subscription: after a handover, sequences may repeat.
    id: u64,
    sequence: u64,
    created: Instant,
    /// Completely written: it only waits for the peer's acknowledgement.
    written: bool,
    /// Tells the group's task to reset its stream.
    cancel: oneshot::Sender<()>,
    task: JoinHandle<()>,
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
    /// The id of the next group to start.
    next_id: u64,
    /// Payload bytes of the in-flight groups written so far; each group's task adds what it
    /// writes and takes it all back when it ends.
    inflight_bytes: Arc<AtomicU64>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
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
}

/// What a group's task reports: its in-flight id, its sequence, and what happened.
type Done = (u64, u64, Progress);

/// How far a group's task got.
enum Progress {
    /// Completely written; waiting for the acknowledgement.
    Written,
    /// Acknowledged (or no longer waited for), or failed.
    Done(Result<(), Error>),
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
        // Completions are bounded by the in-flight window, so the channel needs no bound.
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            conn,
            scheduler,
            id: subscribe.id,
            priority: subscribe.priority,
            order: subscribe.group_order,
            expires,
            window: Window {
                groups: window.groups.max(1),
                bytes: window.bytes,
            },
            inflight: VecDeque::new(),
            next_id: 0,
            inflight_bytes: Arc::default(),
            done_tx,
            done_rx,
            stats,
        }
    }

    /// Serves groups until the track ends, the subscriber cancels, or an error; INFO has
    /// already been written. GROUP_DROPs go out from a writer of their own, so a subscribe
    /// stream blocked by a stalled peer never stalls the serving.
    pub(super) async fn run(
        self,
        track: TrackConsumer,
        writer: &mut Writer,
        reader: &mut Reader,
    ) -> Result<(), Error> {
        let (drops_tx, mut drops_rx) = mpsc::channel::<GroupDrop>(MAX_PENDING_DROPS);
        let (written_tx, written_rx) = watch::channel(0u64);
        let mut writing = Box::pin(async {
            while let Some(drop) = drops_rx.recv().await {
                writer.encode(&drop).await?;
                written_tx.send_modify(|written| *written += 1);
            }
            Ok::<(), Error>(())
        });
        let reports = DropReports {
            tx: drops_tx,
            queued: 0,
            written: written_rx,
        };
        let serving = self.serve(track, reader, reports);
        tokio::pin!(serving);

        let result = tokio::select! {
            res = &mut serving => res,
            res = &mut writing => match res {
                // The report channel closes only once serving is over.
                Ok(()) => serving.await,
                Err(err) => Err(err),
            },
        };
        let flushed = match result {
            // Let the last reports out, within bounds, before the FIN.
            Ok(()) => tokio::time::timeout(FINAL_FLUSH_TIMEOUT, &mut writing)
                .await
                .map_err(|_| Error::timeout("the last writes of a subscribe stream"))
                .and_then(|written| written),
            Err(err) => Err(err),
        };
        // A write cut short may have left half a message: then only a reset is correct.
        drop(writing);
        flushed.and_then(|()| writer.finish())
    }

    async fn serve(
        mut self,
        mut track: TrackConsumer,
        reader: &mut Reader,
        mut drops: DropReports,
    ) -> Result<(), Error> {
        let mut track_done = false;
        let result = loop {
            if track_done && self.inflight.is_empty() {
                // Spec §7.3: the track can no longer be served, so the subscription ends.
                break Ok(());
            }
            // A duration the peer chose: one too large to add means never.
            let next_expiry = self.expires.and_then(|expires| {
                self.inflight
                    .front()
                    .and_then(|g| g.created.checked_add(expires))
            });

            tokio::select! {
                res = track.next_group(), if !track_done => match res {
                    Ok(Some(group)) => self.start_group(group, &mut drops).await,
                    Ok(None) => track_done = true,
                    Err(err) => break Err(err),
                },
                Some((id, sequence, progress)) = self.done_rx.recv() => {
                    self.progress(id, sequence, progress, &mut drops);
                },
                res = reader.decode_maybe::<SubscribeUpdate>() => match res {
                    // 0.8.0 never sends updates, and their layout is ambiguous (spec §6.5).
                    Ok(Some(update)) => tracing::debug!(?update, "subscribe update ignored"),
                    // The subscriber's FIN cancels the subscription (spec §5.3).
                    Ok(None) => break Ok(()),
                    Err(err) => break Err(err),
                },
                () = sleep_until(next_expiry), if next_expiry.is_some() => {
                    self.drop_expired(&mut drops).await;
                },
            }
        };
        // The track is done only once every group was acknowledged (or its wait timed out), so
        // the FIN of the subscribe stream does not overtake the last groups.
        // Whatever is still in flight is reset (by dropping `self`).
        result
    }

    /// A group's task made progress. Groups are found by id: a sequence may be in flight
    /// twice after a handover.
    fn progress(&mut self, id: u64, sequence: u64, progress: Progress, drops: &mut DropReports) {
        let Some(pos) = self.inflight.iter().position(|g| g.id == id) else {
            return;
        };
        match progress {
            Progress::Written => self.inflight[pos].written = true,
            Progress::Done(result) => {
                self.inflight.remove(pos);
                if let Err(err) = result {
                    drops.report(sequence, &err);
                }
            }
        }
    }

    /// Whether a group created at `created` is at least `expires` old. At the deadline itself it
    /// is expired: the expiry timer fires then, and a group it did not drop would re-arm the
    /// timer for a deadline already reached, a busy loop while the clock stands still.
    fn is_expired(&self, created: Instant) -> bool {
        self.expires
            .is_some_and(|expires| created.elapsed() >= expires)
    }

    /// Starts sending `group`, first making room by dropping the oldest in-flight group.
    async fn start_group(&mut self, group: GroupConsumer, drops: &mut DropReports) {
        let sequence = group.sequence();
        if self.is_expired(group.created()) {
            drops.report(sequence, &Error::Cancel);
            return;
        }
        // Groups written or delivered meanwhile free their room first.
        while let Ok((id, done, progress)) = self.done_rx.try_recv() {
            self.progress(id, done, progress, drops);
        }
        loop {
            // Past the byte window, the oldest group goes, written or not: it holds the
            // transport's send buffer. Past the group window, the oldest still being written.
            let writing = self.inflight.iter().filter(|g| !g.written).count();
            let bytes = self.inflight_bytes.load(Ordering::Relaxed);
            let victim = if bytes > self.window.bytes {
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
            let dropped = oldest.sequence;
            tracing::debug!(
                sequence = dropped,
                writing,
                bytes,
                "subscriber behind, group dropped"
            );
            cancel(oldest).await;
            self.stats.group_dropped();
            drops.report(dropped, &Error::Cancel);
            drops.flush().await;
        }

        let (cancel_tx, cancel_rx) = oneshot::channel();
        let conn = self.conn.clone();
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
            done: self.done_tx.clone(),
            bytes: self.inflight_bytes.clone(),
            stats: self.stats.clone(),
        };
        let created = group.created();
        let task = tokio::spawn(sender.run(conn, group, cancel_rx));
        self.inflight.push_back(InFlight {
            id,
            sequence,
            created,
            written: false,
            cancel: cancel_tx,
            task,
        });
    }

    async fn drop_expired(&mut self, drops: &mut DropReports) {
        while let Some(front) = self.inflight.front() {
            if !self.is_expired(front.created) {
                break;
            }
            let Some(expired) = self.inflight.pop_front() else {
                break;
            };
            let sequence = expired.sequence;
            cancel(expired).await;
            self.stats.group_dropped();
            drops.report(sequence, &Error::Cancel);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Each task resets its stream when its cancel sender goes.
        self.inflight.clear();
    }
}

/// Resets an in-flight group's stream and waits until it is done, so the space it held in the
/// connection's send window is free before anything else is written.
async fn cancel(group: InFlight) {
    let _ = group.cancel.send(());
    let _ = group.task.await;
}

/// GROUP_DROP reports on their way to the subscribe stream's writer.
struct DropReports {
    tx: mpsc::Sender<GroupDrop>,
    /// Reports queued so far.
    queued: u64,
    /// Reports written so far, as the writer counts them.
    written: watch::Receiver<u64>,
}

impl DropReports {
    /// Queues a GROUP_DROP for `sequence`, unless the subscriber is too far behind to take it.
    fn report(&mut self, sequence: u64, err: &Error) {
        let drop = GroupDrop {
            sequence,
            count: 0,
            code: err.code(),
        };
        match self.tx.try_send(drop) {
            Ok(()) => self.queued += 1,
            Err(_) => tracing::debug!(sequence, "group drop not reported: subscriber not reading"),
        }
    }

    /// Waits (briefly) until every queued report is written.
    async fn flush(&mut self) {
        let queued = self.queued;
        let written = self.written.wait_for(|written| *written >= queued);
        let _ = tokio::time::timeout(REPORT_FLUSH_TIMEOUT, written).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a group's task needs besides the group: where it goes and where it reports.
struct GroupSender {
    /// The in-flight id.
    id: u64,
    subscribe: u64,
    /// How its writes are scheduled among the connection's others; its rank is the stream's
    /// QUIC priority.
    class: WriteClass,
    scheduler: Arc<SendScheduler>,
    done: mpsc::UnboundedSender<Done>,
    /// The subscription's in-flight bytes.
    bytes: Arc<AtomicU64>,
    stats: Arc<SessionStats>,
}

impl GroupSender {
    /// Sends one group on a uni stream of its own (spec §5.6), then waits (bounded) for the
    /// peer to acknowledge all of it, and only then reports it done: until then its bytes sit
    /// in the transport's send buffer on our behalf. A cancel, or dropping the cancel sender,
    /// resets the stream (freeing that buffer).
    async fn run(self, conn: Connection, group: GroupConsumer, cancel: oneshot::Receiver<()>) {
        let sequence = group.sequence();
        let mut cancel = cancel;
        let mut written = 0u64;
        let mut writer = None;
        let result = tokio::select! {
            biased;
            _ = &mut cancel => Err(Error::Cancel),
            res = self.write_group(&conn, group, &mut writer, &mut written) => res,
        };
        let result = match (result, writer.as_mut()) {
            (Ok(()), Some(writer)) => {
                let _ = self.done.send((self.id, sequence, Progress::Written));
                tokio::select! {
                biased;
                _ = &mut cancel => Err(Error::Cancel),
                _ = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, writer.stopped()) => Ok(()),
                }
            }
            (result, _) => result,
        };
        if let (Err(err), Some(writer)) = (&result, writer.as_mut()) {
            // Also after a complete write: what the peer has not acknowledged is abandoned.
            writer.reset(err);
            self.stats.reset(err);
        }
        self.bytes.fetch_sub(written, Ordering::Relaxed);
        let _ = self.done.send((self.id, sequence, Progress::Done(result)));
    }

    /// Writes the group header and every frame, then FIN, counting the payload written in
    /// `written` (and in the subscription's in-flight bytes).
    async fn write_group(
        &self,
        conn: &Connection,
        mut group: GroupConsumer,
        writer: &mut Option<Writer>,
        written: &mut u64,
    ) -> Result<(), Error> {
        let writer = writer.insert(Writer::new(conn.open_uni().await?));
        writer.set_priority(self.class.rank);
        let header = GroupHeader {
            subscribe: self.subscribe,
            sequence: group.sequence(),
        };
        writer.encode2(&UniStream::Group, &header).await?;
        self.stats.group_sent();
        let mut batch = Vec::new();
        let mut class = self.class;
        while let Some(frame) = group.next_frame().await? {
            self.stats.frame_sent();
            send_frame(
                writer,
                &self.scheduler,
                &mut class,
                frame,
                &mut batch,
                |len| {
                    *written += len;
                    self.bytes.fetch_add(len, Ordering::Relaxed);
                    self.stats.sent(len);
                },
            )
            .await?;
        }
        writer.finish()
    }
}
