//! Message framing over one QUIC stream: a buffered reader that decodes messages as they
//! complete, and a writer that encodes them.

use bytes::{Bytes, BytesMut};

use super::priority::CONTROL_PRIORITY;
use crate::coding::{limits, Decode, DecodeError, Encode};
use crate::transport::{RecvStream, SendStream};
use crate::Error;

/// Reads messages and payload chunks from a receive stream.
///
/// Bytes are kept as the `Bytes` chunks quinn hands out, so a payload that follows a header in
/// the same chunk is sliced, not copied. Only a message split across chunks is joined (a copy
/// of at most [`limits::MAX_MESSAGE_SIZE`] bytes).
#[derive(Debug)]
pub(crate) struct Reader {
    stream: RecvStream,
    /// Bytes of the message being decoded (and whatever followed it in the same chunk).
    pending: Bytes,
    /// The rest of a chunk that was only partly joined to `pending`; read before the stream.
    overflow: Bytes,
}

/// When a message is split across chunks, at least this much of the next chunk is joined to
/// it (and at most as much as is already pending, so joins grow geometrically): a frame
/// header split across chunks costs a few bytes of copying, not the payload that follows.
const MIN_JOIN: usize = 64;

impl Reader {
    pub(crate) fn new(stream: RecvStream) -> Self {
        Self {
            stream,
            pending: Bytes::new(),
            overflow: Bytes::new(),
        }
    }

    /// The next bytes: what overflowed from the last chunk, then the stream.
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        if !self.overflow.is_empty() {
            let take = max.min(self.overflow.len());
            return Ok(Some(self.overflow.split_to(take)));
        }
        self.stream.read_chunk(max).await
    }

    /// Decodes the next message; the stream ending before or inside it is an error.
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read so far stay buffered for the next call.
    pub(crate) async fn decode<T: Decode>(&mut self) -> Result<T, Error> {
        self.decode_maybe()
            .await?
            .ok_or(Error::Decode(DecodeError::UnexpectedEnd))
    }

    /// Decodes the next message, or `None` when the stream ends cleanly at a message boundary
    /// (spec §3, optional trailing messages).
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read so far stay buffered for the next call.
    pub(crate) async fn decode_maybe<T: Decode>(&mut self) -> Result<Option<T>, Error> {
        loop {
            if !self.pending.is_empty() {
                let mut cursor = self.pending.clone();
                match T::decode(&mut cursor) {
                    Ok(msg) => {
                        self.pending = cursor;
                        return Ok(Some(msg));
                    }
                    Err(DecodeError::Short) => {}
                    Err(err) => return Err(err.into()),
                }
                if self.pending.len() >= limits::MAX_MESSAGE_SIZE {
                    return Err(DecodeError::TooLarge("message").into());
                }
            }
            let max = limits::MAX_MESSAGE_SIZE - self.pending.len();
            match self.next_chunk(max).await? {
                Some(chunk) => self.append(chunk),
                None if self.pending.is_empty() => return Ok(None),
                None => return Err(DecodeError::UnexpectedEnd.into()),
            }
        }
    }

    fn append(&mut self, mut chunk: Bytes) {
        if self.pending.is_empty() {
            self.pending = chunk;
            return;
        }
        let take = chunk.len().min(self.pending.len().max(MIN_JOIN));
        let head = chunk.split_to(take);
        let mut joined = BytesMut::with_capacity(self.pending.len() + head.len());
        joined.extend_from_slice(&self.pending);
        joined.extend_from_slice(&head);
        self.pending = joined.freeze();
        // `overflow` is empty here: it is drained before the stream is read.
        self.overflow = chunk;
    }

    /// Reads up to `max` payload bytes: what is buffered first, then straight from the stream.
    /// `None` at the end of the stream.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        if !self.pending.is_empty() {
            let take = max.min(self.pending.len());
            return Ok(Some(self.pending.split_to(take)));
        }
        self.next_chunk(max).await
    }

    /// Waits for the end of the stream, discarding anything that arrives.
    ///
    /// Used on streams where the peer has nothing more to say but may still FIN or reset.
    pub(crate) async fn closed(&mut self) -> Result<(), Error> {
        self.pending.clear();
        self.overflow.clear();
        while self.stream.read_chunk(usize::MAX).await?.is_some() {}
        Ok(())
    }

    /// Asks the peer to stop sending, with the code of `err`.
    pub(crate) fn stop(&mut self, err: &Error) {
        self.stream.stop(err.code());
    }
}

/// Writes messages and payload chunks to a send stream.
///
/// A `Writer` dropped before [`Writer::finish`] resets its stream with [`Error::Cancel`], so a
/// cancelled task never leaves a truncated stream that looks complete (quinn would FIN it).
#[derive(Debug)]
pub(crate) struct Writer {
    stream: SendStream,
    scratch: BytesMut,
    done: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.done {
            self.stream.reset(Error::Cancel.code());
        }
    }
}

impl Writer {
    pub(crate) fn new(stream: SendStream) -> Self {
        Self {
            stream,
            scratch: BytesMut::new(),
            done: false,
        }
    }

    /// A writer for a control stream, sent before any group stream.
    pub(crate) fn control(stream: SendStream) -> Self {
        let mut writer = Self::new(stream);
        writer.set_priority(CONTROL_PRIORITY);
        writer
    }

    /// Encodes `msg` and writes it.
    ///
    /// # Cancel safety
    /// Not cancel safe: a cancelled write may leave part of the message unsent. Reset the
    /// stream after a cancellation.
    pub(crate) async fn encode<T: Encode>(&mut self, msg: &T) -> Result<(), Error> {
        msg.encode(&mut self.scratch);
        let chunk = self.scratch.split().freeze();
        self.stream.write_chunk(chunk).await
    }

    /// Encodes two messages (a stream type and the first message) into one write.
    pub(crate) async fn encode2<A: Encode, B: Encode>(
        &mut self,
        a: &A,
        b: &B,
    ) -> Result<(), Error> {
        a.encode(&mut self.scratch);
        b.encode(&mut self.scratch);
        let chunk = self.scratch.split().freeze();
        self.stream.write_chunk(chunk).await
    }

    /// Encodes every message of `msgs` into one write.
    pub(crate) async fn encode_all<T: Encode>(&mut self, msgs: &[T]) -> Result<(), Error> {
        for msg in msgs {
            msg.encode(&mut self.scratch);
        }
        let chunk = self.scratch.split().freeze();
        self.stream.write_chunk(chunk).await
    }

    /// Writes a payload chunk without copying it.
    pub(crate) async fn write_chunk(&mut self, chunk: Bytes) -> Result<(), Error> {
        self.stream.write_chunk(chunk).await
    }

    /// Sets the QUIC send priority of the stream (higher goes first).
    pub(crate) fn set_priority(&mut self, priority: i32) {
        self.stream.set_priority(priority);
    }

    /// Finishes the stream (FIN).
    pub(crate) fn finish(&mut self) -> Result<(), Error> {
        self.done = true;
        self.stream.finish()
    }

    /// Resets the stream with the code of `err`.
    pub(crate) fn reset(&mut self, err: &Error) {
        self.done = true;
        self.stream.reset(err.code());
    }

    /// Resolves when the peer asks us to stop sending, with its code.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn stopped(&mut self) -> Error {
        match self.stream.stopped().await {
            Ok(Some(code)) => Error::from_code(code),
            Ok(None) => Error::Cancel,
            Err(err) => err,
        }
    }
}
