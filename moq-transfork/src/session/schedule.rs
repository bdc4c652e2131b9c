//! Which media write goes next on one connection.
//!
//! QUIC stream priorities order only what is already written: quinn takes the connection's
//! flow-control credit when a stream is written to, not when its bytes are sent. When the
//! subscriber extends credit slowly, the streams that write first take it, whatever their
//! priority, and a control message waits behind all the media written before it.
//!
//! So a session admits each media write here first, and the [`SendScheduler`] decides:
//! - **By priority.** A write waits while a write it [yields to](WriteClass::yields_to) is
//!   waiting or in progress: one of a track with a higher priority, or of a group its
//!   subscription sends first. A subscription finishes the group it started before it starts
//!   another, then starts the newest in descending order (the oldest in ascending order):
//!   when groups come faster than the path carries them, each group cut short for a newer
//!   one would waste the bytes it took, and none would ever arrive whole. Writes of different
//!   subscriptions with the same priority do not wait for each other.
//! - **Within a bounded write-ahead.** Bytes admitted and not yet seen leave the host (from
//!   quinn's statistics: bytes sent, less bytes lost) stay under a budget sized by the rate
//!   the connection drains, so that the path stays full and a control message or a newly
//!   important group finds little ahead of it.
//!
//! Bytes written to a stream that is then reset never leave: its writer gives back those
//! still ahead ([`SendScheduler::abandon`]). And nothing can stay blocked for long: when
//! less than [`PROGRESS`] leaves for [`STALL`] (or four round trips, if longer) while writes
//! wait, the scheduler forgets what it admitted and starts afresh. A write stuck on its own
//! stream's credit (a peer that does not read that stream) therefore never blocks the
//! connection, and the ACKs and control messages that trickle out meanwhile do not count as
//! progress.
//!
//! In memory there is no packet to count, and every write is admitted at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::stream::Writer;
use crate::message::FrameHeader;
use crate::model::FrameConsumer;
use crate::sync::lock;
use crate::transport::{Connection, TransportKind};
use crate::Error;

/// The least write-ahead budget: what a connection drains in a millisecond at 32 MB/s, and
/// little enough that a control message or a newer group waits behind at most this much
/// media (32 ms at 1 MB/s).
const MIN_BUDGET: u64 = 32 * 1024;

/// The most write-ahead budget, whatever the rate.
const MAX_BUDGET: u64 = 8 * 1024 * 1024;

/// How much of the drain rate the budget covers: enough to keep the path full between two
/// polls of the transport's statistics.
const BUDGET_TIME: Duration = Duration::from_millis(20);

/// The drain rate is measured over intervals at least this long, so that a burst of
/// datagrams sent at once does not count as a fast path.
const RATE_INTERVAL: Duration = Duration::from_millis(20);

/// How often a write over budget polls the transport at first; the interval grows while
/// nothing leaves, up to [`MAX_POLL`].
const MIN_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(25);

/// How long nothing may leave while writes wait before the scheduler starts afresh.
const STALL: Duration = Duration::from_millis(100);

/// Bytes that must leave before they count as progress against [`STALL`]: a full packet. A
/// connection whose media is stuck still sends ACKs and small control messages.
const PROGRESS: u64 = 1200;

/// Who a media write is for, which decides which writes it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WriteClass {
    /// The track priority the subscriber asked for.
    pub(crate) priority: i8,
    /// The subscription, if the write belongs to one (a fetch does not).
    pub(crate) subscription: Option<u64>,
    /// The order within the subscription (higher first): the stream's QUIC priority.
    pub(crate) rank: i32,
    /// The rank, and the stream's QUIC priority, from the first payload on (see
    /// [`started_priority`](super::priority::started_priority)).
    pub(crate) start: Option<i32>,
}

impl WriteClass {
    /// Whether this write waits for `other`: a write of a higher track priority, or of a
    /// group its subscription sends first.
    pub(crate) fn yields_to(&self, other: &Self) -> bool {
        other.priority > self.priority
            || (other.priority == self.priority
                && self.subscription.is_some()
                && other.subscription == self.subscription
                && other.rank > self.rank)
    }
}

/// Admits the media writes of one connection; see the [module](self) documentation.
#[derive(Debug)]
pub(crate) struct SendScheduler {
    /// Where the counts of bytes that left come from; `None` in memory, where every write is
    /// admitted at once.
    drain: Option<Drain>,
    state: Mutex<State>,
    next_id: AtomicU64,
}

/// The source of the counts of bytes that left.
#[derive(Debug)]
enum Drain {
    Transport(Connection),
    /// Counts a test sets by hand.
    #[cfg(test)]
    Manual(Arc<Mutex<Counts>>),
}

/// Bytes sent and lost so far, and the round-trip time.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    sent: u64,
    lost: u64,
    rtt: Duration,
}

impl Drain {
    fn counts(&self) -> Counts {
        match self {
            Self::Transport(conn) => {
                let stats = conn.stats();
                Counts {
                    sent: stats.udp_tx.bytes,
                    lost: stats.path.lost_bytes,
                    rtt: stats.path.rtt,
                }
            }
            #[cfg(test)]
            Self::Manual(counts) => *lock(counts),
        }
    }
}

#[derive(Debug)]
struct State {
    /// Bytes admitted and not yet seen leave.
    ahead: u64,
    /// Bytes admitted so far: the position of the last admitted byte in the order of
    /// admission. Bytes leave about in that order, so the `ahead` bytes are taken to be the
    /// last ones admitted.
    admitted: u64,
    budget: u64,
    /// The highest recent drain rate, in bytes per second.
    rate: f64,
    /// Bytes that left since `measured`, the start of the current rate interval.
    measuring: u64,
    measured: Instant,
    /// Bytes sent and lost, as of the last poll of the transport.
    sent: u64,
    lost: u64,
    /// When [`PROGRESS`] bytes last left.
    progressed: Instant,
    /// Bytes that left since `progressed`, fewer than [`PROGRESS`].
    trickled: u64,
    /// Writes admitted before a fresh start no longer count.
    epoch: u64,
    /// Writes admitted in this epoch and not yet done.
    active: Vec<(u64, WriteClass)>,
    waiting: Vec<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    class: WriteClass,
    waker: Waker,
}

impl SendScheduler {
    /// A scheduler for the media writes of `conn`.
    pub(crate) fn new(conn: Connection) -> Arc<Self> {
        let bounded = matches!(
            conn.kind(),
            TransportKind::Quic | TransportKind::WebTransport
        );
        Self::with(bounded.then_some(Drain::Transport(conn)))
    }

    fn with(drain: Option<Drain>) -> Arc<Self> {
        let now = Instant::now();
        let counts = drain.as_ref().map(Drain::counts).unwrap_or_default();
        Arc::new(Self {
            drain,
            state: Mutex::new(State {
                ahead: 0,
                admitted: 0,
                budget: MIN_BUDGET,
                rate: 0.0,
                measuring: 0,
                measured: now,
                sent: counts.sent,
                lost: counts.lost,
                progressed: now,
                trickled: 0,
                epoch: 0,
                active: Vec::new(),
                waiting: Vec::new(),
            }),
            next_id: AtomicU64::new(0),
        })
    }

    /// Waits until a write of `bytes` in `class` may go, and returns its permit; hold the
    /// permit while writing, and [`complete`](SendPermit::complete) it once written.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped wait gives its place up.
    pub(crate) fn admit(&self, class: WriteClass, bytes: u64) -> Admit<'_> {
        Admit {
            scheduler: self,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            class,
            bytes,
            queued: false,
            timer: None,
        }
    }

    /// Gives back what a stream had `admitted` and still holds unsent: the stream was reset,
    /// or stopped by the peer, and the transport discards its unsent data, which will never
    /// leave.
    ///
    /// The transport does not say how much of a stream left, so it is estimated: the bytes
    /// the stream had admitted among the last `ahead` admitted on the connection. That is
    /// exact when bytes leave in the order they were admitted, as they do for the group a
    /// subscription is writing. Where a stream of a higher priority admitted later overtook
    /// this one, its unsent bytes stay counted, and the connection writes ahead that much
    /// less until its bytes catch up or the stall fallback starts afresh. Freeing all a
    /// stream wrote instead would let the transport's buffer grow by up to a budget with
    /// every reset, on a path that is already behind.
    pub(crate) fn abandon(&self, admitted: Admitted) {
        if self.drain.is_none() || admitted.bytes == 0 {
            return;
        }
        let mut state = lock(&self.state);
        let gone_up_to = state.admitted.saturating_sub(state.ahead);
        let unsent = admitted.bytes.min(admitted.end.saturating_sub(gone_up_to));
        if unsent > 0 {
            state.ahead = state.ahead.saturating_sub(unsent);
            Self::wake_all(&state);
        }
    }

    /// Polls the transport for the bytes that left since the last poll.
    fn poll_transport(&self, state: &mut State, now: Instant) {
        let Some(drain) = &self.drain else {
            return;
        };
        let counts = drain.counts();
        let sent = counts.sent.saturating_sub(state.sent);
        let lost = counts.lost.saturating_sub(state.lost);
        state.sent = counts.sent;
        state.lost = counts.lost;
        // Retransmissions are counted as sent: take the lost bytes back out, or every loss
        // would let more be written ahead.
        let left = sent.saturating_sub(lost);
        state.ahead = state.ahead.saturating_sub(left);
        state.trickled += left;
        if state.trickled >= PROGRESS {
            state.trickled = 0;
            state.progressed = now;
        }
        state.measuring += left;
        let elapsed = now.saturating_duration_since(state.measured);
        if elapsed >= RATE_INTERVAL {
            // The rate follows a faster path at once and a slower one within some intervals.
            let rate = state.measuring as f64 / elapsed.as_secs_f64();
            state.rate = rate.max(state.rate * 0.75);
            let budget = (state.rate * BUDGET_TIME.as_secs_f64()) as u64;
            state.budget = budget.clamp(MIN_BUDGET, MAX_BUDGET);
            state.measuring = 0;
            state.measured = now;
        }
        // A stall: next to nothing left while writes waited. Whatever was admitted is stuck on a
        // stream's own credit or was dropped with its stream; start afresh.
        let stall = STALL.max(counts.rtt * 4);
        if now.saturating_duration_since(state.progressed) >= stall {
            tracing::trace!(
                ahead = state.ahead,
                "send scheduler stalled, starting afresh"
            );
            state.ahead = 0;
            state.epoch += 1;
            state.active.clear();
            state.progressed = now;
            // Writes that waited for the forgotten ones may go.
            Self::wake_all(state);
        }
    }

    /// Wakes every waiting write to check its turn again.
    fn wake_all(state: &State) {
        for waiter in &state.waiting {
            waiter.waker.wake_by_ref();
        }
    }
}

/// A wait for a write's turn, from [`SendScheduler::admit`].
#[derive(Debug)]
pub(crate) struct Admit<'a> {
    scheduler: &'a SendScheduler,
    id: u64,
    class: WriteClass,
    bytes: u64,
    queued: bool,
    /// While over budget: when to poll the transport again.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<'a> Future for Admit<'a> {
    type Output = SendPermit<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SendPermit<'a>> {
        let this = &mut *self;
        let scheduler = this.scheduler;
        if scheduler.drain.is_none() {
            let admitted = Admitted::default();
            return Poll::Ready(SendPermit::admitted(scheduler, this.id, 0, admitted));
        }
        let mut state = lock(&scheduler.state);
        loop {
            let now = Instant::now();
            let yields = |class: &WriteClass| this.class.yields_to(class);
            let behind = state.active.iter().any(|(_, class)| yields(class))
                || state
                    .waiting
                    .iter()
                    .any(|w| w.id != this.id && yields(&w.class));
            let fits = |state: &State| state.ahead == 0 || state.ahead + this.bytes <= state.budget;
            if !behind && !fits(&state) {
                scheduler.poll_transport(&mut state, now);
            }
            if !behind && fits(&state) {
                if state.ahead == 0 && state.active.is_empty() {
                    // The first write after an idle spell: a stall is counted from here.
                    state.progressed = now;
                }
                state.ahead += this.bytes;
                state.admitted += this.bytes;
                let admitted = Admitted {
                    bytes: this.bytes,
                    end: state.admitted,
                };
                let epoch = state.epoch;
                state.active.push((this.id, this.class));
                if this.queued {
                    state.waiting.retain(|w| w.id != this.id);
                    this.queued = false;
                }
                this.timer = None;
                return Poll::Ready(SendPermit::admitted(scheduler, this.id, epoch, admitted));
            }

            // Wait for a wake-up from a write that ends, or poll the transport later: over
            // budget, for bytes to leave; behind a write in progress, in case it stalls.
            let idle = now.saturating_duration_since(state.progressed);
            let next = if behind {
                now + STALL.saturating_sub(idle).max(MIN_POLL)
            } else {
                now + (idle / 4).clamp(MIN_POLL, MAX_POLL)
            };
            match &mut this.timer {
                Some(timer) if timer.deadline() <= next => {}
                slot => *slot = Some(Box::pin(tokio::time::sleep_until(next))),
            }
            if let Some(timer) = &mut this.timer {
                if timer.as_mut().poll(cx).is_ready() {
                    this.timer = None;
                    scheduler.poll_transport(&mut state, Instant::now());
                    continue;
                }
            }
            match state.waiting.iter_mut().find(|w| w.id == this.id) {
                Some(waiter) => waiter.waker.clone_from(cx.waker()),
                None => state.waiting.push(Waiter {
                    id: this.id,
                    class: this.class,
                    waker: cx.waker().clone(),
                }),
            }
            this.queued = true;
            return Poll::Pending;
        }
    }
}

impl Drop for Admit<'_> {
    fn drop(&mut self) {
        if self.queued {
            let mut state = lock(&self.scheduler.state);
            state.waiting.retain(|w| w.id != self.id);
            // Writes that yielded to this one may go now.
            SendScheduler::wake_all(&state);
        }
    }
}

/// What a stream had admitted on its connection: how many bytes, and where the last of
/// them stands in the order the connection's writes were admitted. What
/// [`SendScheduler::abandon`] gives back when the stream is reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Admitted {
    bytes: u64,
    end: u64,
}

/// A write's turn: hold it while writing. Dropped before [`complete`](Self::complete) (the
/// write failed or was cancelled), its bytes are given back.
#[derive(Debug)]
pub(crate) struct SendPermit<'a> {
    scheduler: &'a SendScheduler,
    id: u64,
    epoch: u64,
    admitted: Admitted,
    written: bool,
}

impl<'a> SendPermit<'a> {
    fn admitted(scheduler: &'a SendScheduler, id: u64, epoch: u64, admitted: Admitted) -> Self {
        Self {
            scheduler,
            id,
            epoch,
            admitted,
            written: false,
        }
    }

    /// The bytes were written to the stream whose count is `stream`: they count until they
    /// leave.
    pub(crate) fn complete(mut self, stream: &mut Admitted) {
        self.written = true;
        stream.bytes += self.admitted.bytes;
        stream.end = self.admitted.end;
    }
}

impl Drop for SendPermit<'_> {
    fn drop(&mut self) {
        if self.scheduler.drain.is_none() {
            return;
        }
        let mut state = lock(&self.scheduler.state);
        if self.epoch != state.epoch {
            return;
        }
        if let Some(pos) = state.active.iter().position(|(id, _)| *id == self.id) {
            state.active.swap_remove(pos);
        }
        if !self.written {
            state.ahead = state.ahead.saturating_sub(self.admitted.bytes);
        }
        SendScheduler::wake_all(&state);
    }
}

/// Writes a frame's header and payload to `writer` as the payload arrives: every batch of
/// chunks ready at once is admitted by `scheduler` as `class` (and from the first on, as the
/// group started) and written in one write, the header with the first. `batch` is scratch
/// space kept from frame to frame; `admitted` counts what the stream wrote, for
/// [`SendScheduler::abandon`]; `sent` counts the payload bytes of each batch.
pub(crate) async fn send_frame(
    writer: &mut Writer,
    scheduler: &SendScheduler,
    class: &mut WriteClass,
    mut frame: FrameConsumer,
    batch: &mut Vec<Bytes>,
    admitted: &mut Admitted,
    mut sent: impl FnMut(u64),
) -> Result<(), Error> {
    writer.stage(&FrameHeader { size: frame.size() });
    let mut unread = frame.size();
    // A complete frame cannot fail any more: once its last byte is written, reading on would
    // only lock the frame again to learn that it ended.
    while unread > 0 {
        batch.clear();
        if frame.read_chunks(batch).await? == 0 {
            break;
        }
        let len = batch.iter().map(|chunk| chunk.len() as u64).sum();
        unread = unread.saturating_sub(len);
        let permit = scheduler.admit(*class, len).await;
        if let Some(rank) = class.start.take() {
            class.rank = rank;
            writer.set_priority(rank);
        }
        // Counted as handed over: a write the peer's credit holds up still holds the bytes.
        sent(len);
        writer.write_chunks(batch).await?;
        permit.complete(admitted);
    }
    // An empty frame's header is not held back for the next frame.
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::session::priority::{started_priority, stream_priority};
    use crate::GroupOrder;

    fn class(priority: i8, subscription: Option<u64>, rank: i32) -> WriteClass {
        WriteClass {
            priority,
            subscription,
            rank,
            start: None,
        }
    }

    fn manual() -> (Arc<SendScheduler>, Arc<Mutex<Counts>>) {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let scheduler = SendScheduler::with(Some(Drain::Manual(counts.clone())));
        (scheduler, counts)
    }

    /// Admits and writes `bytes` at once, counted to `stream`.
    async fn write(scheduler: &SendScheduler, bytes: u64, stream: &mut Admitted) {
        scheduler
            .admit(class(0, None, 0), bytes)
            .await
            .complete(stream);
    }

    /// Lets `bytes` more leave, as the transport would report.
    fn leave(counts: &Mutex<Counts>, bytes: u64) {
        lock(counts).sent += bytes;
    }

    #[test]
    fn writes_yield_to_higher_priorities_and_to_their_own_newer_groups_only() {
        let low = class(0, Some(1), 10);
        assert!(low.yields_to(&class(1, Some(2), 0)));
        assert!(low.yields_to(&class(0, Some(1), 11)));
        // Another subscription at the same priority shares the connection.
        assert!(!low.yields_to(&class(0, Some(2), 11)));
        assert!(!low.yields_to(&class(0, Some(1), 9)));
        assert!(!low.yields_to(&class(-1, Some(1), 100)));
        // Fetches belong to no subscription.
        assert!(!class(0, None, 1).yields_to(&class(0, None, 2)));
        // A group under way is finished before a newer one starts.
        let newer = class(0, Some(1), stream_priority(0, GroupOrder::Descending, 11));
        let started = class(0, Some(1), started_priority(0, 10));
        assert!(newer.yields_to(&started));
        assert!(!started.yields_to(&newer));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lower_priority_write_waits_for_a_higher_one_in_progress() {
        let (scheduler, _counts) = manual();
        let high = scheduler.admit(class(1, Some(1), 0), 100).await;
        let mut low = scheduler.admit(class(0, Some(2), 0), 100);
        assert!((&mut low).now_or_never().is_none());
        // Another write of the high priority is not held back.
        let other = scheduler.admit(class(1, Some(3), 0), 100).now_or_never();
        assert!(other.is_some());
        drop(other);
        high.complete(&mut Admitted::default());
        let low = tokio::time::timeout(Duration::from_millis(1), low).await;
        assert!(
            low.is_ok(),
            "the low write goes once the high one is written"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_group_goes_before_an_older_one_waiting_for_the_budget() {
        let (scheduler, counts) = manual();
        // The budget is full.
        scheduler
            .admit(class(0, Some(1), 1), MIN_BUDGET)
            .await
            .complete(&mut Admitted::default());
        let mut old = scheduler.admit(class(0, Some(1), 1), 1000);
        assert!((&mut old).now_or_never().is_none());
        let mut new = scheduler.admit(class(0, Some(1), 2), 1000);
        assert!((&mut new).now_or_never().is_none());
        leave(&counts, MIN_BUDGET);
        // The newer group's poll sees the bytes leave; the older one still waits for it.
        let new = tokio::time::timeout(MIN_POLL * 2, new).await.unwrap();
        assert!((&mut old).now_or_never().is_none());
        new.complete(&mut Admitted::default());
        tokio::time::timeout(MIN_POLL, old).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_write_ahead_is_bounded_until_bytes_leave() {
        let (scheduler, counts) = manual();
        write(&scheduler, MIN_BUDGET / 2, &mut Admitted::default()).await;
        write(&scheduler, MIN_BUDGET / 2, &mut Admitted::default()).await;
        let mut third = scheduler.admit(class(0, None, 0), 1);
        assert!((&mut third).now_or_never().is_none());
        // Polling finds nothing left: still waiting.
        tokio::time::advance(MIN_POLL * 10).await;
        assert!((&mut third).now_or_never().is_none());
        leave(&counts, 1);
        tokio::time::timeout(MAX_POLL, third).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_given_up_returns_its_bytes() {
        let (scheduler, _counts) = manual();
        drop(scheduler.admit(class(0, None, 0), MIN_BUDGET).await);
        assert!(scheduler
            .admit(class(0, None, 0), MIN_BUDGET)
            .now_or_never()
            .is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_lets_the_writes_behind_it_go() {
        let (scheduler, counts) = manual();
        write(&scheduler, MIN_BUDGET, &mut Admitted::default()).await;
        let mut high = scheduler.admit(class(1, None, 0), 1);
        assert!((&mut high).now_or_never().is_none());
        leave(&counts, MIN_BUDGET);
        let mut low = scheduler.admit(class(0, None, 0), 1);
        // Behind the high write, which has not polled yet.
        assert!((&mut low).now_or_never().is_none());
        drop(high);
        tokio::time::timeout(MIN_POLL * 2, low).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_lets_every_waiting_write_go() {
        let (scheduler, _counts) = manual();
        // A write stuck on its stream's own credit: in progress, and nothing leaves.
        let _stuck = scheduler.admit(class(1, None, 0), 100).await;
        let start = Instant::now();
        let behind = scheduler.admit(class(0, None, 0), 100);
        tokio::time::timeout(STALL * 2, behind).await.unwrap();
        assert!(start.elapsed() >= STALL);
        // Over budget with nothing leaving: the same.
        write(&scheduler, MIN_BUDGET, &mut Admitted::default()).await;
        let start = Instant::now();
        tokio::time::timeout(STALL * 2, scheduler.admit(class(0, None, 0), 100))
            .await
            .unwrap();
        assert!(start.elapsed() >= STALL);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_abandoned_with_a_reset_stream_let_the_waiting_writes_go() {
        let (scheduler, _counts) = manual();
        let mut stream = Admitted::default();
        write(&scheduler, MIN_BUDGET, &mut stream).await;
        let mut next = scheduler.admit(class(0, None, 0), MIN_BUDGET);
        assert!((&mut next).now_or_never().is_none());
        scheduler.abandon(stream);
        assert!(next.now_or_never().is_some(), "woken and admitted at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_stream_gives_back_only_its_bytes_still_ahead() {
        let (scheduler, counts) = manual();
        let ahead = || lock(&scheduler.state).ahead;
        let mut streams = [Admitted::default(); 2];
        for index in [0, 1, 0, 1] {
            write(&scheduler, 1000, &mut streams[index]).await;
        }
        let [old, new] = streams;
        // The first 2500 bytes left: old's 1000, new's 1000, and 500 of old's second write.
        leave(&counts, 2500);
        let poll = || scheduler.poll_transport(&mut lock(&scheduler.state), Instant::now());
        poll();
        assert_eq!(ahead(), 1500);
        scheduler.abandon(old);
        assert_eq!(ahead(), 1000, "old's last 500 bytes");
        scheduler.abandon(new);
        assert_eq!(ahead(), 0, "new's last 1000 bytes");
        // A stream whose bytes all left gives nothing back.
        let mut gone = Admitted::default();
        write(&scheduler, 1000, &mut gone).await;
        write(&scheduler, 1000, &mut Admitted::default()).await;
        leave(&counts, 1000);
        poll();
        scheduler.abandon(gone);
        assert_eq!(ahead(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_smaller_than_a_packet_is_no_progress() {
        let (scheduler, counts) = manual();
        write(&scheduler, MIN_BUDGET, &mut Admitted::default()).await;
        let start = Instant::now();
        let waiting = scheduler.admit(class(0, None, 0), MIN_BUDGET);
        tokio::pin!(waiting);
        // ACKs and control messages: 50 bytes every 10 ms, far from draining the budget.
        let admitted = tokio::time::timeout(STALL * 2, async {
            loop {
                tokio::select! {
                    permit = &mut waiting => return permit,
                    () = tokio::time::sleep(Duration::from_millis(10)) => leave(&counts, 50),
                }
            }
        })
        .await;
        assert!(admitted.is_ok(), "a stall, not progress");
        assert!(start.elapsed() >= STALL);
    }
}
