//! One direction of an in-memory stream: `Bytes` chunks queued between one sender and one
//! receiver, bounded by a flow-control window of unread bytes.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::sync::lock;
use crate::{Cause, Error, TransportError};

/// The error of a write to a stream that was finished or reset.
fn finished() -> Error {
    Error::Transport(TransportError::Write(Cause::msg(
        "stream already finished or reset",
    )))
}

/// What the sending side has done to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendState {
    /// Writes are accepted.
    Open,
    /// FIN: the receiver sees the end once it has read every queued chunk.
    Finished,
    /// RESET_STREAM with this code: queued data was discarded.
    Reset(u32),
}

/// What the receiving side has done to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    /// Reading.
    Open,
    /// Every byte up to the FIN was received: read to the end, or discarded after the FIN had
    /// arrived (QUIC acknowledges data on receipt, so no STOP_SENDING goes out then).
    Done,
    /// STOP_SENDING with this code: queued data was discarded.
    Stopped(u32),
}

/// The state both halves share, behind one short-lived lock per stream direction.
#[derive(Debug)]
struct State {
    /// Written and not yet read, oldest first; never holds an empty chunk.
    chunks: VecDeque<Bytes>,
    /// Total length of `chunks`, at most the window.
    unread: usize,
    send: SendState,
    recv: RecvState,
    /// The task waiting to read.
    reader: Option<Waker>,
    /// The task waiting to write, or for `stopped`.
    writer: Option<Waker>,
}

/// One direction of a stream.
#[derive(Debug)]
pub(super) struct Pipe {
    state: Mutex<State>,
    /// The most unread bytes the pipe holds before writes wait (a QUIC stream receive window).
    window: usize,
}

impl Pipe {
    /// An open pipe; a `window` of 0 is taken as 1 so that writes can progress.
    pub(super) fn new(window: usize) -> Self {
        Self {
            state: Mutex::new(State {
                chunks: VecDeque::new(),
                unread: 0,
                send: SendState::Open,
                recv: RecvState::Open,
                reader: None,
                writer: None,
            }),
            window: window.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Moves as much of `chunk` into the pipe as the window allows, splitting it without
    /// copying; ready once all of it is in.
    pub(super) fn poll_write(
        &self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<Result<(), Error>> {
        let mut state = self.lock();
        if state.send != SendState::Open {
            return Poll::Ready(Err(finished()));
        }
        if let RecvState::Stopped(code) = state.recv {
            return Poll::Ready(Err(Error::from_code(code)));
        }
        while !chunk.is_empty() {
            let space = self.window.saturating_sub(state.unread);
            if space == 0 {
                state.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let part = chunk.split_to(space.min(chunk.len()));
            state.unread += part.len();
            state.chunks.push_back(part);
            wake(&mut state.reader);
        }
        Poll::Ready(Ok(()))
    }

    /// FIN after the queued data. Finishing a stopped stream succeeds and does nothing, as in
    /// quinn (the stop is reported by `stopped`).
    ///
    /// # Errors
    /// [`Error::Transport`] if the stream was already finished or reset.
    pub(super) fn finish(&self) -> Result<(), Error> {
        let mut state = self.lock();
        if state.send != SendState::Open {
            return Err(finished());
        }
        state.send = SendState::Finished;
        wake(&mut state.reader);
        Ok(())
    }

    /// RESET_STREAM: queued data is discarded and the reader gets `code`. Does nothing once the
    /// stream was reset or the receiver has everything.
    pub(super) fn reset(&self, code: u32) {
        let mut state = self.lock();
        if matches!(state.send, SendState::Reset(_)) || state.recv == RecvState::Done {
            return;
        }
        state.send = SendState::Reset(code);
        state.chunks.clear();
        state.unread = 0;
        wake(&mut state.reader);
    }

    /// Ready with the receiver's STOP_SENDING code, or `None` once the receiver has every byte
    /// of a finished stream (or the stream was reset here, after which no stop matters).
    pub(super) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<Option<u32>> {
        let mut state = self.lock();
        match (state.recv, state.send) {
            (RecvState::Stopped(code), _) => Poll::Ready(Some(code)),
            (RecvState::Done, _) | (_, SendState::Reset(_)) => Poll::Ready(None),
            _ => {
                state.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// The next chunk in order, split to at most `max` bytes without copying; `None` at the FIN.
    pub(super) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<Result<Option<Bytes>, Error>> {
        let mut state = self.lock();
        if let SendState::Reset(code) = state.send {
            return Poll::Ready(Err(Error::from_code(code)));
        }
        if let RecvState::Stopped(_) = state.recv {
            return Poll::Ready(Err(Error::Transport(TransportError::Read(Cause::msg(
                "stream already stopped",
            )))));
        }
        if let Some(mut chunk) = state.chunks.pop_front() {
            if chunk.len() > max {
                let rest = chunk.split_off(max);
                state.chunks.push_front(rest);
            }
            state.unread -= chunk.len();
            wake(&mut state.writer);
            return Poll::Ready(Ok(Some(chunk)));
        }
        if state.send == SendState::Finished {
            state.recv = RecvState::Done;
            wake(&mut state.writer);
            return Poll::Ready(Ok(None));
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// STOP_SENDING: queued data is discarded and the sender's writes fail with `code`. After
    /// a FIN has arrived nothing is stopped (as in QUIC, the data was already received); the
    /// stream just counts as read. Does nothing once the receiver is done or the stream reset.
    pub(super) fn stop(&self, code: u32) {
        let mut state = self.lock();
        if state.recv != RecvState::Open || matches!(state.send, SendState::Reset(_)) {
            return;
        }
        state.recv = match state.send {
            SendState::Finished => RecvState::Done,
            _ => RecvState::Stopped(code),
        };
        state.chunks.clear();
        state.unread = 0;
        wake(&mut state.writer);
    }

    /// Whether the receiver has nothing more coming: it read the FIN, saw a reset, or stopped.
    pub(super) fn recv_finished(&self) -> bool {
        let state = self.lock();
        state.recv != RecvState::Open || matches!(state.send, SendState::Reset(_))
    }

    /// Whether the sender can write no more: it finished or reset the stream, or was stopped.
    pub(super) fn send_finished(&self) -> bool {
        let state = self.lock();
        state.send != SendState::Open || matches!(state.recv, RecvState::Stopped(_))
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}
