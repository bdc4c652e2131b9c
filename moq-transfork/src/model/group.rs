//! Groups: numbered sequences of frames within a track.
//!
//! A [`GroupProducer`] appends frames; every [`GroupConsumer`] reads all of them from frame 0 (or
//! from the position of the consumer it was cloned from). Frames are shared, never copied.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::time::Instant;

use super::cache::Accounting;
use super::frame::{FrameConsumer, FrameProducer, FrameShared};
use super::waiter::{WaitList, Waiter};
use crate::sync::lock;
use crate::Error;

/// The state of one group, shared by its producer, its consumers and its track's cache.
#[derive(Debug)]
pub(crate) struct GroupShared {
    sequence: u64,
    created: Instant,
    state: Mutex<GroupState>,
}

#[derive(Debug)]
struct GroupState {
    frames: Vec<Arc<FrameShared>>,
    /// `None` while open, `Ok` once finished, `Err` if closed with an error.
    status: Option<Result<(), Error>>,
    waiters: WaitList,
    closed_waiters: WaitList,
    /// Woken when the group leaves its track's cache.
    uncached_waiters: WaitList,
    /// Payload bytes written to this group.
    bytes: u64,
    /// The track's byte count, while the group is cached.
    accounting: Option<Arc<Accounting>>,
}

impl GroupShared {
    pub(crate) fn new(
        sequence: u64,
        created: Instant,
        accounting: Option<Arc<Accounting>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            sequence,
            created,
            state: Mutex::new(GroupState {
                frames: Vec::new(),
                status: None,
                waiters: WaitList::default(),
                closed_waiters: WaitList::default(),
                uncached_waiters: WaitList::default(),
                bytes: 0,
                accounting,
            }),
        })
    }

    pub(crate) fn sequence(&self) -> u64 {
        self.sequence
    }

    pub(crate) fn created(&self) -> Instant {
        self.created
    }

    /// Counts `n` more payload bytes, towards the track's cache too while cached.
    pub(crate) fn account(&self, n: u64) {
        let mut state = lock(&self.state);
        state.bytes += n;
        if let Some(accounting) = &state.accounting {
            accounting.add(n);
        }
    }

    /// Called when the track evicts the group: its bytes no longer count towards the cache.
    pub(crate) fn uncache(&self) {
        let wake = {
            let mut state = lock(&self.state);
            if let Some(accounting) = state.accounting.take() {
                accounting.sub(state.bytes);
            }
            state.uncached_waiters.take()
        };
        wake.wake();
    }

    /// True while the group's bytes count towards its creating track's cache, that is while
    /// that track caches it.
    pub(crate) fn is_accounted(&self) -> bool {
        lock(&self.state).accounting.is_some()
    }

    /// Closes the group (and its unfinished frames) with `err`, unless it is already closed.
    pub(crate) fn close(&self, err: Error) {
        let (wake, frames) = {
            let mut state = lock(&self.state);
            if state.status.is_some() {
                return;
            }
            state.status = Some(Err(err.clone()));
            let wake = state.waiters.take().and(state.closed_waiters.take());
            (wake, state.frames.clone())
        };
        wake.wake();
        for frame in frames {
            frame.close(err.clone());
        }
    }

    fn finish(&self) {
        let wake = {
            let mut state = lock(&self.state);
            if state.status.is_some() {
                return;
            }
            state.status = Some(Ok(()));
            state.waiters.take().and(state.closed_waiters.take())
        };
        wake.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).status.is_some()
    }

    /// Appends a frame with `bytes` already written; ignored if the group is closed.
    fn push(&self, frame: Arc<FrameShared>, bytes: u64) -> Result<(), Error> {
        let wake = {
            let mut state = lock(&self.state);
            match &state.status {
                Some(Err(err)) => return Err(err.clone()),
                Some(Ok(())) => return Err(Error::Cancel),
                None => {}
            }
            state.frames.push(frame);
            state.bytes += bytes;
            if let Some(accounting) = &state.accounting {
                accounting.add(bytes);
            }
            state.waiters.take()
        };
        wake.wake();
        Ok(())
    }
}

/// Writes the frames of one group, created by
/// [`TrackProducer::create_group`](super::TrackProducer::create_group).
///
/// Dropping it finishes the group cleanly: consumers get `Ok(None)` after the last frame.
#[derive(Debug)]
pub struct GroupProducer {
    shared: Arc<GroupShared>,
}

impl GroupProducer {
    pub(crate) fn new(shared: Arc<GroupShared>) -> Self {
        Self { shared }
    }

    /// The group's sequence number within its track.
    pub fn sequence(&self) -> u64 {
        self.shared.sequence
    }

    /// Appends a whole frame. Ignored if the group was already closed (for example by
    /// [`TrackProducer::close`](super::TrackProducer::close)); see [`is_closed`](Self::is_closed).
    pub fn write_frame(&mut self, payload: Bytes) {
        let len = payload.len() as u64;
        // An error means the group is closed, which is documented as ignored.
        let _ = self.shared.push(FrameShared::whole(payload), len);
    }

    /// Appends a frame of `size` bytes to be written in chunks by the returned producer.
    ///
    /// If the group was already closed with an error, the frame is closed with it too and every
    /// write returns that error.
    pub fn create_frame(&mut self, size: u64) -> FrameProducer {
        let frame = FrameShared::open(size);
        let frame = match self.shared.push(frame.clone(), 0) {
            Ok(()) => frame,
            Err(err) => FrameShared::failed(size, err),
        };
        FrameProducer::new(frame, self.shared.clone())
    }

    /// Appends a frame of `size` bytes whose first bytes are `chunks` (left empty for reuse),
    /// to be completed by the returned producer. Consumers wake once for the frame and its
    /// first chunks together, where [`create_frame`](Self::create_frame) followed by
    /// [`FrameProducer::write_chunks`] wakes them twice: a receiver that has part of a frame
    /// in hand publishes the frame with it.
    ///
    /// # Errors
    ///
    /// [`Error::WrongSize`] if `chunks` hold more than `size` bytes, or the error the group
    /// was closed with ([`Error::Cancel`] if it was finished); nothing is appended then.
    pub fn create_frame_with(
        &mut self,
        size: u64,
        chunks: &mut Vec<Bytes>,
    ) -> Result<FrameProducer, Error> {
        let written: u64 = chunks.iter().map(|chunk| chunk.len() as u64).sum();
        if written > size {
            chunks.clear();
            return Err(Error::WrongSize);
        }
        let frame = FrameShared::started(size, chunks);
        self.shared.push(frame.clone(), written)?;
        Ok(FrameProducer::new(frame, self.shared.clone()))
    }

    /// The number of frames appended so far.
    pub fn frame_count(&self) -> usize {
        lock(&self.shared.state).frames.len()
    }

    /// Closes the group with `err`: every consumer gets `Err(err)`, and so do the consumers of
    /// its unfinished frames.
    pub fn close(self, err: Error) {
        self.shared.close(err);
    }

    /// Finishes the group cleanly, like dropping it.
    pub fn finish(self) {
        self.shared.finish();
    }

    /// A new consumer that reads from frame 0.
    pub fn subscribe(&self) -> GroupConsumer {
        GroupConsumer::new(self.shared.clone())
    }

    /// True once the group is closed, for example by its track being closed with an error.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Resolves once the group has left its track's cache (evicted, expired, or the track
    /// closed or forgot it): it can reach no new consumer, and its bytes no longer count
    /// towards any cache, so whoever fills it from the network should stop.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) fn uncached(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let mut waiter = Waiter::new(&shared.state, uncached_waiters);
            poll_fn(|cx| waiter.poll(cx, |state| state.accounting.is_none().then_some(()))).await;
        }
    }
}

fn uncached_waiters(state: &mut GroupState) -> &mut WaitList {
    &mut state.uncached_waiters
}

impl Drop for GroupProducer {
    fn drop(&mut self) {
        self.shared.finish();
    }
}

/// Reads the frames of one group, in order, from frame 0.
///
/// A clone continues from the same position, independently afterwards.
#[derive(Debug)]
pub struct GroupConsumer {
    shared: Arc<GroupShared>,
    /// The next frame [`poll_next_frame`](Self::poll_next_frame) returns.
    index: usize,
    /// A frame taken by an unfinished [`read_frame`](Self::read_frame), returned first.
    pending: Option<FrameConsumer>,
    slot: Option<usize>,
}

impl Clone for GroupConsumer {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            index: self.index,
            pending: self.pending.clone(),
            slot: None,
        }
    }
}

impl GroupConsumer {
    pub(crate) fn new(shared: Arc<GroupShared>) -> Self {
        Self {
            shared,
            index: 0,
            pending: None,
            slot: None,
        }
    }

    /// The group's sequence number within its track.
    pub fn sequence(&self) -> u64 {
        self.shared.sequence
    }

    /// The shared state, for inserting the group into another track.
    pub(crate) fn into_shared(self) -> Arc<GroupShared> {
        self.shared.clone()
    }

    /// When the group was created (by the track's producer), for expiry.
    pub fn created(&self) -> Instant {
        self.shared.created
    }

    /// The index of the next frame this consumer returns.
    pub fn frame_index(&self) -> usize {
        self.index - usize::from(self.pending.is_some())
    }

    /// The number of frames appended so far.
    pub fn frame_count(&self) -> usize {
        lock(&self.shared.state).frames.len()
    }

    /// Polls for the next frame: `Ok(None)` after the last frame of a finished group, `Err` as
    /// soon as the group is closed with an error.
    pub fn poll_next_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<FrameConsumer>, Error>> {
        if let Some(frame) = self.pending.take() {
            return Poll::Ready(Ok(Some(frame)));
        }
        let mut state = lock(&self.shared.state);
        let ready = match &state.status {
            Some(Err(err)) => Err(err.clone()),
            _ => match state.frames.get(self.index) {
                Some(frame) => {
                    self.index += 1;
                    Ok(Some(FrameConsumer::new(frame.clone())))
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

    /// Returns the next frame, to be read chunk by chunk; `Ok(None)` after the last frame of a
    /// finished group.
    ///
    /// # Errors
    ///
    /// The error the group was closed with.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a frame is consumed only when this returns it.
    pub async fn next_frame(&mut self) -> Result<Option<FrameConsumer>, Error> {
        poll_fn(|cx| self.poll_next_frame(cx)).await
    }

    /// Polls for the next whole frame.
    pub fn poll_read_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        let mut frame = match self.pending.take() {
            Some(frame) => frame,
            None => match ready!(self.poll_next_frame(cx)) {
                Ok(Some(frame)) => frame,
                other => return Poll::Ready(other.map(|_| None)),
            },
        };
        match frame.poll_read_all(cx) {
            Poll::Ready(result) => Poll::Ready(result.map(Some)),
            Poll::Pending => {
                self.pending = Some(frame);
                Poll::Pending
            }
        }
    }

    /// Waits for the next frame to be complete and returns its payload; `Ok(None)` after the
    /// last frame of a finished group. A frame written in one chunk is returned without copying.
    ///
    /// # Errors
    ///
    /// The error the group or the frame was closed with.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if cancelled, the frame is returned again by the next `read_frame` or
    /// `next_frame`.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_read_frame(cx)).await
    }

    /// Waits until the group ends: `Ok(())` when finished cleanly, `Err` when closed with an
    /// error. Frames may still be unread.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) -> Result<(), Error> {
        let mut waiter = Waiter::new(&self.shared.state, closed_waiters);
        poll_fn(|cx| waiter.poll(cx, |state| state.status.clone())).await
    }
}

fn closed_waiters(state: &mut GroupState) -> &mut WaitList {
    &mut state.closed_waiters
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if self.slot.is_some() {
            lock(&self.shared.state).waiters.release(&mut self.slot);
        }
    }
}
