//! The two halves of an in-memory stream, as the transport's `SendStream` and `RecvStream`
//! wrap them.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use super::pipe::Pipe;
use super::{End, Link};
use crate::Error;

/// A stream's place in the accepting side's limit of concurrent streams. It returns to the
/// opener when every half holding it is done with the stream.
pub(super) type Credit = Arc<OwnedSemaphorePermit>;

/// The sending half of an in-memory stream.
pub(crate) struct MemorySendStream {
    pipe: Arc<Pipe>,
    link: Link,
    /// Held by the accepting side until this half is finished, reset or stopped.
    credit: Option<Credit>,
    /// Keeps the connection end open, as a quinn stream keeps its connection.
    _end: Arc<End>,
}

impl fmt::Debug for MemorySendStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySendStream")
            .field("side", &self.link.side)
            .field("finished", &self.pipe.send_finished())
            .finish_non_exhaustive()
    }
}

impl MemorySendStream {
    pub(super) fn new(pipe: Arc<Pipe>, link: Link, credit: Option<Credit>, end: Arc<End>) -> Self {
        Self {
            pipe,
            link,
            credit,
            _end: end,
        }
    }

    /// Returns the stream's credit once no more data can be sent.
    fn release_if_done(&mut self) {
        if self.credit.is_some() && self.pipe.send_finished() {
            self.credit = None;
        }
    }

    pub(crate) async fn write_chunk(&mut self, mut chunk: Bytes) -> Result<(), Error> {
        let pipe = &self.pipe;
        let result = tokio::select! {
            biased;
            err = self.link.closed() => Err(err),
            res = poll_fn(|cx| pipe.poll_write(cx, &mut chunk)) => res,
        };
        self.release_if_done();
        result
    }

    pub(crate) fn finish(&mut self) -> Result<(), Error> {
        self.link.check_open()?;
        let result = self.pipe.finish();
        self.release_if_done();
        result
    }

    pub(crate) fn reset(&mut self, code: u32) {
        if self.link.check_open().is_ok() {
            self.pipe.reset(code);
        }
        self.release_if_done();
    }

    pub(crate) async fn stopped(&mut self) -> Result<Option<u32>, Error> {
        let pipe = &self.pipe;
        tokio::select! {
            biased;
            err = self.link.closed() => Err(err),
            code = poll_fn(|cx| pipe.poll_stopped(cx)) => Ok(code),
        }
    }
}

impl Drop for MemorySendStream {
    fn drop(&mut self) {
        // As quinn does: a send stream dropped without finish or reset is finished.
        if !self.pipe.send_finished() {
            let _ = self.pipe.finish();
        }
    }
}

/// The receiving half of an in-memory stream.
pub(crate) struct MemoryRecvStream {
    pipe: Arc<Pipe>,
    link: Link,
    /// Held by the accepting side until the FIN or a reset was read, or the stream stopped.
    credit: Option<Credit>,
    _end: Arc<End>,
}

impl fmt::Debug for MemoryRecvStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRecvStream")
            .field("side", &self.link.side)
            .field("finished", &self.pipe.recv_finished())
            .finish_non_exhaustive()
    }
}

impl MemoryRecvStream {
    pub(super) fn new(pipe: Arc<Pipe>, link: Link, credit: Option<Credit>, end: Arc<End>) -> Self {
        Self {
            pipe,
            link,
            credit,
            _end: end,
        }
    }

    fn release_if_done(&mut self) {
        if self.credit.is_some() && self.pipe.recv_finished() {
            self.credit = None;
        }
    }

    pub(crate) async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        let pipe = &self.pipe;
        let result = tokio::select! {
            biased;
            err = self.link.closed() => Err(err),
            res = poll_fn(|cx| pipe.poll_read(cx, max)) => res,
        };
        self.release_if_done();
        result
    }

    pub(crate) fn stop(&mut self, code: u32) {
        if self.link.check_open().is_ok() {
            self.pipe.stop(code);
        }
        self.release_if_done();
    }
}

impl Drop for MemoryRecvStream {
    fn drop(&mut self) {
        // As quinn does: a receive stream dropped before its end sends STOP_SENDING 0.
        self.pipe.stop(0);
    }
}
