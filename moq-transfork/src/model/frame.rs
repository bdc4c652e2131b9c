//! Frames: the payloads of a group, written whole or in chunks.
//!
//! A [`FrameProducer`] writes exactly [`FrameProducer::size`] bytes, in chunks of any size; every
//! [`FrameConsumer`] reads the same chunks (the same [`Bytes`] allocations, never copied) as they
//! arrive, or the whole frame at once with [`FrameConsumer::read_all`].

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use super::group::GroupShared;
use super::waiter::WaitList;
use crate::sync::lock;
use crate::Error;

/// The state of one frame, shared by its producer and consumers.
#[derive(Debug)]
pub(crate) struct FrameShared {
    size: u64,
    state: Mutex<FrameState>,
}

#[derive(Debug)]
struct FrameState {
    chunks: Vec<Bytes>,
    written: u64,
    /// `None` while bytes are missing, `Ok` once all `size` bytes arrived, `Err` if aborted.
    status: Option<Result<(), Error>>,
    waiters: WaitList,
}

impl FrameShared {
    /// A frame still waiting for `size` bytes.
    pub(crate) fn open(size: u64) -> Arc<Self> {
        Self::with(size, Vec::new(), (size == 0).then_some(Ok(())))
    }

    /// A frame whose payload is already complete.
    pub(crate) fn whole(payload: Bytes) -> Arc<Self> {
        let size = payload.len() as u64;
        let chunks = if payload.is_empty() {
            Vec::new()
        } else {
            vec![payload]
        };
        Self::with(size, chunks, Some(Ok(())))
    }

    /// A frame of `size` bytes whose first bytes are `chunks` (taken, left empty), at most
    /// `size` of them.
    pub(crate) fn started(size: u64, chunks: &mut Vec<Bytes>) -> Arc<Self> {
        let chunks: Vec<Bytes> = chunks.drain(..).filter(|chunk| !chunk.is_empty()).collect();
        let written: u64 = chunks.iter().map(|chunk| chunk.len() as u64).sum();
        Self::with(size, chunks, (written == size).then_some(Ok(())))
    }

    /// A frame that failed before it started (its group was already closed).
    pub(crate) fn failed(size: u64, err: Error) -> Arc<Self> {
        Self::with(size, Vec::new(), Some(Err(err)))
    }

    fn with(size: u64, chunks: Vec<Bytes>, status: Option<Result<(), Error>>) -> Arc<Self> {
        let written = chunks.iter().map(|c| c.len() as u64).sum();
        Arc::new(Self {
            size,
            state: Mutex::new(FrameState {
                chunks,
                written,
                status,
                waiters: WaitList::default(),
            }),
        })
    }

    /// Aborts the frame with `err` unless it is already complete or aborted.
    pub(crate) fn close(&self, err: Error) {
        let wake = {
            let mut state = lock(&self.state);
            if state.status.is_some() {
                return;
            }
            state.status = Some(Err(err));
            state.waiters.take()
        };
        wake.wake();
    }
}

/// Writes one frame of a group, chunk by chunk, created by
/// [`GroupProducer::create_frame`](super::GroupProducer::create_frame).
///
/// Exactly [`size`](Self::size) bytes must be written. Dropping the producer before that closes
/// the frame, and its whole group, with [`Error::WrongSize`].
#[derive(Debug)]
pub struct FrameProducer {
    frame: Arc<FrameShared>,
    group: Arc<GroupShared>,
    remaining: u64,
}

impl FrameProducer {
    pub(crate) fn new(frame: Arc<FrameShared>, group: Arc<GroupShared>) -> Self {
        let remaining = frame.size - lock(&frame.state).written;
        Self {
            frame,
            group,
            remaining,
        }
    }

    /// The declared size of the frame in bytes.
    pub fn size(&self) -> u64 {
        self.frame.size
    }

    /// The number of bytes still to be written.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Appends a chunk; consumers see it at once. Empty chunks are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::WrongSize`] if the chunk would exceed the declared size (nothing is written), or
    /// the error the frame was closed with (for example when its group or track was closed).
    pub fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        let len = chunk.len() as u64;
        self.append(len, std::iter::once(chunk))
    }

    /// Appends every chunk of `chunks` (left empty for reuse) at once: consumers wake once for
    /// them all, and read them as the same chunks. A receiver that takes several chunks from
    /// the network at a time wakes each consumer once, not once per chunk.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write), for the chunks together: nothing is written on an error.
    pub fn write_chunks(&mut self, chunks: &mut Vec<Bytes>) -> Result<(), Error> {
        let len = chunks.iter().map(|chunk| chunk.len() as u64).sum();
        // The drain empties `chunks` whether or not they were written.
        self.append(len, chunks.drain(..))
    }

    /// Appends `chunks`, `len` bytes in all, under one lock, and wakes the consumers once.
    fn append(&mut self, len: u64, chunks: impl Iterator<Item = Bytes>) -> Result<(), Error> {
        if len > self.remaining {
            return Err(Error::WrongSize);
        }
        if len == 0 {
            return Ok(());
        }
        let wake = {
            let mut state = lock(&self.frame.state);
            if let Some(Err(err)) = &state.status {
                return Err(err.clone());
            }
            state
                .chunks
                .extend(chunks.filter(|chunk| !chunk.is_empty()));
            state.written += len;
            if state.written == self.frame.size {
                state.status = Some(Ok(()));
            }
            state.waiters.take()
        };
        self.remaining -= len;
        wake.wake();
        self.group.account(len);
        Ok(())
    }

    /// Aborts the frame and its group with `err`; consumers of both get `Err(err)`.
    pub fn close(self, err: Error) {
        self.frame.close(err.clone());
        self.group.close(err);
    }
}

impl Drop for FrameProducer {
    fn drop(&mut self) {
        let incomplete = lock(&self.frame.state).status.is_none();
        if incomplete {
            self.frame.close(Error::WrongSize);
            self.group.close(Error::WrongSize);
        }
    }
}

/// Reads one frame, chunk by chunk or whole.
///
/// A clone reads from the same position as the original, independently afterwards.
#[derive(Debug)]
pub struct FrameConsumer {
    frame: Arc<FrameShared>,
    index: usize,
    slot: Option<usize>,
}

impl Clone for FrameConsumer {
    fn clone(&self) -> Self {
        Self {
            frame: self.frame.clone(),
            index: self.index,
            slot: None,
        }
    }
}

impl FrameConsumer {
    pub(crate) fn new(frame: Arc<FrameShared>) -> Self {
        Self {
            frame,
            index: 0,
            slot: None,
        }
    }

    /// The declared size of the frame in bytes.
    pub fn size(&self) -> u64 {
        self.frame.size
    }

    /// Polls for the next chunk: `Ok(None)` once the whole frame was read, `Err` as soon as the
    /// frame is aborted.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        let mut state = lock(&self.frame.state);
        let ready = match &state.status {
            Some(Err(err)) => Err(err.clone()),
            _ => match state.chunks.get(self.index) {
                Some(chunk) => {
                    self.index += 1;
                    Ok(Some(chunk.clone()))
                }
                None if state.status.is_some() => Ok(None),
                None => {
                    state.waiters.register(&mut self.slot, cx.waker());
                    return Poll::Pending;
                }
            },
        };
        state.waiters.release(&mut self.slot);
        Poll::Ready(ready)
    }

    /// Returns the next chunk, `Ok(None)` once the whole frame was read.
    ///
    /// # Errors
    ///
    /// The error the frame was aborted with, such as [`Error::WrongSize`] when its producer was
    /// dropped early.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a chunk is consumed only when this returns it.
    pub async fn read(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_read(cx)).await
    }

    /// Polls for every chunk that arrived and was not read yet, appending them to `into` in
    /// one lock of the frame: ready with the number appended, 0 once the whole frame was read.
    pub fn poll_read_chunks(
        &mut self,
        cx: &mut Context<'_>,
        into: &mut Vec<Bytes>,
    ) -> Poll<Result<usize, Error>> {
        let mut state = lock(&self.frame.state);
        let ready = match &state.status {
            Some(Err(err)) => Err(err.clone()),
            _ => match state.chunks.get(self.index..) {
                Some(ready) if !ready.is_empty() => {
                    into.extend_from_slice(ready);
                    self.index = state.chunks.len();
                    Ok(ready.len())
                }
                _ if state.status.is_some() => Ok(0),
                _ => {
                    state.waiters.register(&mut self.slot, cx.waker());
                    return Poll::Pending;
                }
            },
        };
        state.waiters.release(&mut self.slot);
        Poll::Ready(ready)
    }

    /// Appends every chunk that arrived and was not read yet to `into`, waiting for at least
    /// one: the number appended, 0 once the whole frame was read. A sender that forwards a
    /// frame as it arrives takes one lock per batch this way, not one per chunk, and reuses
    /// `into` from frame to frame.
    ///
    /// # Errors
    ///
    /// The error the frame was aborted with.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: chunks are consumed only when this returns them.
    pub async fn read_chunks(&mut self, into: &mut Vec<Bytes>) -> Result<usize, Error> {
        poll_fn(|cx| self.poll_read_chunks(cx, into)).await
    }

    /// Polls for the rest of the frame, ready once every byte arrived.
    pub fn poll_read_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, Error>> {
        let mut state = lock(&self.frame.state);
        let ready = match &state.status {
            Some(Err(err)) => Err(err.clone()),
            Some(Ok(())) => {
                let rest = state.chunks.get(self.index..).unwrap_or_default();
                self.index = state.chunks.len();
                Ok(concat(rest))
            }
            None => {
                state.waiters.register(&mut self.slot, cx.waker());
                return Poll::Pending;
            }
        };
        state.waiters.release(&mut self.slot);
        Poll::Ready(ready)
    }

    /// Waits for the whole frame and returns the bytes not read yet. A frame written in one
    /// chunk is returned without copying.
    ///
    /// # Errors
    ///
    /// The error the frame was aborted with.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is consumed until the whole frame is returned.
    pub async fn read_all(&mut self) -> Result<Bytes, Error> {
        poll_fn(|cx| self.poll_read_all(cx)).await
    }
}

impl Drop for FrameConsumer {
    fn drop(&mut self) {
        if self.slot.is_some() {
            lock(&self.frame.state).waiters.release(&mut self.slot);
        }
    }
}

/// Joins chunks, copying only when there is more than one.
fn concat(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let len = many.iter().map(Bytes::len).sum();
            let mut out = BytesMut::with_capacity(len);
            for chunk in many {
                out.extend_from_slice(chunk);
            }
            out.freeze()
        }
    }
}
