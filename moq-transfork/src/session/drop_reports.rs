//! GROUP_DROP reports of one subscription (spec §6.10), queued by its serving loop and
//! written to the subscribe stream one at a time.
//!
//! The write in progress is kept here, not in a future of its own beside the serving loop,
//! so that the loop polls it only while there is a report to write: a frame's wake-up does
//! not touch the reports at all.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::sync::watch;

use super::stream::Writer;
use crate::message::GroupDrop;
use crate::Error;

/// GROUP_DROP messages waiting to be written. A subscriber too slow to take even these only
/// misses some reports (they are advisory; spec §15.7): the serving loop never waits on them.
const MAX_PENDING_DROPS: usize = 64;

/// How long a new group waits for queued GROUP_DROPs to be written first. Without it the new
/// group's data takes the connection's send window that the dropped group just freed, and the
/// reports of a stalled subscriber would never leave.
const REPORT_FLUSH_TIMEOUT: Duration = Duration::from_millis(100);

/// A report being written; it hands the subscribe stream's writer back when done.
type Write<'w> = Pin<Box<dyn Future<Output = (&'w mut Writer, Result<(), Error>)> + Send + 'w>>;

/// The GROUP_DROP reports of one subscription and the subscribe stream they go out on.
pub(super) struct DropReports<'w> {
    /// Reports not yet being written, oldest first.
    queue: VecDeque<GroupDrop>,
    /// The subscribe stream's writer while no report is being written.
    idle: Option<&'w mut Writer>,
    /// The report being written, holding the writer.
    writing: Option<Write<'w>>,
    /// Reports queued so far.
    queued: u64,
    /// Reports written so far.
    written: watch::Sender<u64>,
}

impl<'w> DropReports<'w> {
    /// No reports yet, to be written on `writer`.
    pub(super) fn new(writer: &'w mut Writer) -> Self {
        Self {
            queue: VecDeque::new(),
            idle: Some(writer),
            writing: None,
            queued: 0,
            written: watch::Sender::new(0),
        }
    }

    /// Queues a GROUP_DROP for `sequence`, unless the subscriber is too far behind to take
    /// it, and starts writing it if nothing else is being written.
    pub(super) fn report(&mut self, sequence: u64, err: &Error) {
        if self.queue.len() >= MAX_PENDING_DROPS {
            tracing::debug!(sequence, "group drop not reported: subscriber not reading");
            return;
        }
        self.queue.push_back(GroupDrop {
            sequence,
            count: 0,
            code: err.code(),
        });
        self.queued += 1;
        self.start_next();
    }

    /// Whether a report is being written: only then has [`poll_written`](Self::poll_written)
    /// anything to do.
    pub(super) fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Drives the report being written; ready once it is out (and the next one started), or
    /// with the error that failed it. Pending while nothing is being written.
    pub(super) fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(writing) = self.writing.as_mut() else {
            return Poll::Pending;
        };
        let (writer, result) = ready!(writing.as_mut().poll(cx));
        self.writing = None;
        self.idle = Some(writer);
        result?;
        self.written.send_modify(|written| *written += 1);
        self.start_next();
        Poll::Ready(Ok(()))
    }

    /// Resolves once every report queued so far is written, or after a short while.
    pub(super) fn flushed(&self) -> impl Future<Output = ()> + Send + 'static {
        let queued = self.queued;
        let mut written = self.written.subscribe();
        async move {
            let written = written.wait_for(|written| *written >= queued);
            let _ = tokio::time::timeout(REPORT_FLUSH_TIMEOUT, written).await;
        }
    }

    /// Writes every queued report. The writer is free again once this is dropped.
    ///
    /// # Cancel safety
    /// Not cancel safe: a report may be left half written. Reset the stream after a
    /// cancellation.
    pub(super) async fn flush(mut self) -> Result<(), Error> {
        while self.is_writing() {
            std::future::poll_fn(|cx| self.poll_written(cx)).await?;
        }
        Ok(())
    }

    /// Starts writing the oldest queued report, if the writer is free.
    fn start_next(&mut self) {
        // No writer while a report is being written.
        let Some(writer) = self.idle.take() else {
            return;
        };
        let Some(drop) = self.queue.pop_front() else {
            self.idle = Some(writer);
            return;
        };
        self.writing = Some(Box::pin(async move {
            let result = writer.encode(&drop).await;
            (writer, result)
        }));
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::session::stream::Reader;
    use crate::transport::{memory, Connection};

    /// A uni stream over memory, with both connections kept open.
    async fn stream() -> (Connection, Connection, Writer, Reader) {
        let (a, b) = memory::pair();
        let writer = Writer::new(a.open_uni().await.unwrap());
        let reader = Reader::new(b.accept_uni().await.unwrap());
        (a, b, writer, reader)
    }

    #[tokio::test(start_paused = true)]
    async fn reports_go_out_in_order_and_past_the_bound_are_left_out() {
        let (_a, _b, mut writer, mut reader) = stream().await;

        let mut drops = DropReports::new(&mut writer);
        assert!(!drops.is_writing());
        // Nothing drives the writes yet: the first is under way, the queue fills up behind it.
        for sequence in 0..=MAX_PENDING_DROPS as u64 + 1 {
            drops.report(sequence, &Error::Cancel);
        }
        assert!(drops.is_writing());
        let flushed = drops.flushed();
        drops.flush().await.unwrap();
        flushed.now_or_never().expect("flushed once written");
        writer.finish().unwrap();

        for sequence in 0..=MAX_PENDING_DROPS as u64 {
            let drop: GroupDrop = reader.decode().await.unwrap();
            assert_eq!(drop.sequence, sequence);
            assert_eq!(drop.code, Error::Cancel.code());
        }
        assert!(reader.decode_maybe::<GroupDrop>().await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_report_is_written_when_polled() {
        let (_a, _b, mut writer, mut reader) = stream().await;

        let mut drops = DropReports::new(&mut writer);
        let flushed = drops.flushed();
        // Nothing queued: nothing to wait for, nothing to drive.
        flushed.now_or_never().expect("nothing to flush");
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(drops.poll_written(&mut cx).is_pending());

        drops.report(7, &Error::Cancel);
        let flushed = drops.flushed();
        tokio::pin!(flushed);
        assert!((&mut flushed).now_or_never().is_none());
        std::future::poll_fn(|cx| drops.poll_written(cx))
            .await
            .unwrap();
        assert!(!drops.is_writing());
        flushed.now_or_never().expect("flushed once written");
        let drop: GroupDrop = reader.decode().await.unwrap();
        assert_eq!(drop.sequence, 7);
    }
}
