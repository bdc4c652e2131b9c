//! One group's stream to a subscriber (spec §5.6): opened, written frame by frame through
//! the connection's [`SendScheduler`], finished, then held until the peer acknowledges it.
//! Dropped before that, it resets the stream. The [`super::subscription`] that starts it
//! polls it among its other groups.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::schedule::{send_frame, Admitted, SendScheduler, WriteClass};
use super::stream::Writer;
use super::subscription::FINAL_FLUSH_TIMEOUT;
use super::SessionStats;
use crate::message::{GroupHeader, UniStream};
use crate::model::GroupConsumer;
use crate::transport::Connection;
use crate::Error;

/// What a group's future reports.
pub(super) enum GroupEvent {
    /// Completely written: the stream now waits for the acknowledgement.
    Written(u64, GroupStream),
    /// Acknowledged (or no longer waited for), or failed.
    Done(u64, Result<(), Error>),
}

/// What a group's future needs besides the group: where it goes and how it counts.
pub(super) struct GroupSender {
    /// The in-flight id.
    pub(super) id: u64,
    /// The subscription it belongs to.
    pub(super) subscribe: u64,
    /// How its writes are scheduled among the connection's others; its rank is the stream's
    /// QUIC priority.
    pub(super) class: WriteClass,
    pub(super) scheduler: Arc<SendScheduler>,
    /// Payload bytes written, which the subscription counts against its byte window while
    /// the group is in flight.
    pub(super) bytes: Arc<AtomicU64>,
    pub(super) stats: Arc<SessionStats>,
}

/// A group's stream from its opening until the peer acknowledged it. Dropped before that (a
/// cancel, the subscription's end), it resets the stream: what the peer has not
/// acknowledged is abandoned, and the transport's send buffer freed.
pub(super) struct GroupStream {
    writer: Writer,
    /// What the stream's writes had admitted, given back to the scheduler when the stream
    /// is reset: what of it did not leave never will.
    admitted: Admitted,
    scheduler: Arc<SendScheduler>,
    stats: Arc<SessionStats>,
    /// Acknowledged, or reset already.
    settled: bool,
}

impl GroupStream {
    /// Resets the stream with the code of `err`.
    fn fail(mut self, err: &Error) {
        self.reset(err);
    }

    fn reset(&mut self, err: &Error) {
        self.writer.reset(err);
        self.stats.reset(err);
        self.scheduler.abandon(self.admitted);
        self.settled = true;
    }

    /// Waits (bounded) for the peer to acknowledge the whole stream, or to stop it.
    pub(super) async fn acknowledged(mut self, id: u64) -> GroupEvent {
        let acknowledged = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, self.writer.acknowledged());
        if let Ok(Err(_)) = acknowledged.await {
            // Stopped by the peer: what the transport held unsent is discarded.
            self.scheduler.abandon(self.admitted);
        }
        self.settled = true;
        GroupEvent::Done(id, Ok(()))
    }
}

impl Drop for GroupStream {
    fn drop(&mut self) {
        if !self.settled {
            self.reset(&Error::Cancel);
        }
    }
}

impl GroupSender {
    /// Sends one group on a uni stream of its own (spec §5.6), once the reports it must
    /// follow are out; the stream then waits for its acknowledgement.
    pub(super) async fn run(
        self,
        conn: Connection,
        group: GroupConsumer,
        reported: Option<impl Future<Output = ()>>,
    ) -> GroupEvent {
        if let Some(reported) = reported {
            reported.await;
        }
        let stream = match conn.open_uni().await {
            Ok(stream) => stream,
            Err(err) => return GroupEvent::Done(self.id, Err(err)),
        };
        let mut stream = GroupStream {
            writer: Writer::new(stream),
            admitted: Admitted::default(),
            scheduler: self.scheduler.clone(),
            stats: self.stats.clone(),
            settled: false,
        };
        match self.write_group(&mut stream, group).await {
            Ok(()) => GroupEvent::Written(self.id, stream),
            Err(err) => {
                stream.fail(&err);
                GroupEvent::Done(self.id, Err(err))
            }
        }
    }

    /// Writes the group header and every frame, then FIN, counting the payload written.
    async fn write_group(
        &self,
        stream: &mut GroupStream,
        mut group: GroupConsumer,
    ) -> Result<(), Error> {
        let writer = &mut stream.writer;
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
                &mut stream.admitted,
                |len| {
                    self.bytes.fetch_add(len, Ordering::Relaxed);
                    self.stats.sent(len);
                },
            )
            .await?;
        }
        writer.finish()
    }
}
