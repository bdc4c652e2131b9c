//! Message framing over one QUIC stream: a buffered reader that decodes messages as they
//! complete, and a writer that encodes them.

use bytes::{Bytes, BytesMut};

use super::priority::CONTROL_PRIORITY;
use crate::coding::{limits, Decode, DecodeError, Encode};
use crate::transport::{RecvStream, SendStream};
use crate::Error;

/// Reads messages and payload chunks from a receive stream.
///
/// A message that lies within one chunk is decoded straight from the `Bytes` quinn handed out,
/// so a payload that follows a header in the same chunk is sliced, never copied. A message
/// split across chunks is gathered in a growable buffer (one copy of its bytes, at most
/// [`limits::MAX_MESSAGE_SIZE`]), and decoding is retried only once the bytes the last attempt
/// asked for ([`DecodeError::Short`]) have arrived, and no more than that is copied. A message
/// therefore costs at most two attempts per varint (its first byte, then its rest) and one per
/// string body, plus the one that succeeds, however the peer chunks it: reading is linear in
/// the input, and the payload after a split header stays in its chunk.
#[derive(Debug)]
pub(crate) struct Reader {
    stream: RecvStream,
    /// What is left of the last chunk read: not yet decoded nor handed out.
    chunk: Bytes,
    /// The start of a message that spans chunks; empty between messages.
    partial: BytesMut,
    /// Bytes `partial` lacks before the next decode attempt can succeed (0: try now).
    need: usize,
}

/// A `partial` buffer that grew past this (a long SETUP or path) is freed once its message is
/// decoded, so an idle stream holds no large allocation; a smaller one is kept for the frame
/// headers that straddle chunks on group streams.
const KEEP_CAPACITY: usize = 256;

impl Reader {
    pub(crate) fn new(stream: RecvStream) -> Self {
        Self {
            stream,
            chunk: Bytes::new(),
            partial: BytesMut::new(),
            need: 0,
        }
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
    /// # Errors
    /// [`Error::Decode`] with [`DecodeError::TooLarge`]`("message")` as soon as the message is
    /// known to exceed [`limits::MAX_MESSAGE_SIZE`] (before its bytes arrive when a declared
    /// length says so); [`DecodeError::UnexpectedEnd`] on a FIN inside a message; any other
    /// decode error of `T`; the stream's errors.
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read so far stay buffered for the next call.
    pub(crate) async fn decode_maybe<T: Decode>(&mut self) -> Result<Option<T>, Error> {
        loop {
            if self.partial.is_empty() {
                if !self.chunk.is_empty() {
                    let mut cursor = self.chunk.clone();
                    match T::decode(&mut cursor) {
                        Ok(msg) => {
                            self.chunk = cursor;
                            return Ok(Some(msg));
                        }
                        Err(DecodeError::Short(need)) => {
                            self.wait_for(self.chunk.len(), need)?;
                            self.partial.extend_from_slice(&self.chunk);
                            self.chunk.clear();
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
            } else if self.need == 0 {
                let mut cursor = &self.partial[..];
                match T::decode(&mut cursor) {
                    Ok(msg) => {
                        // Only bytes the message was known to need were gathered, so it used
                        // them all.
                        debug_assert!(cursor.is_empty());
                        self.reset_partial();
                        return Ok(Some(msg));
                    }
                    Err(DecodeError::Short(need)) => self.wait_for(self.partial.len(), need)?,
                    Err(err) => return Err(err.into()),
                }
            }

            if self.chunk.is_empty() {
                // `wait_for` left room for at least one more byte.
                let max = limits::MAX_MESSAGE_SIZE - self.partial.len();
                match self.stream.read_chunk(max).await? {
                    Some(chunk) => self.chunk = chunk,
                    None if self.partial.is_empty() => return Ok(None),
                    None => return Err(DecodeError::UnexpectedEnd.into()),
                }
            }
            if !self.partial.is_empty() {
                let take = self.need.min(self.chunk.len());
                self.partial.extend_from_slice(&self.chunk.split_to(take));
                self.need -= take;
            }
        }
    }

    /// Records that a message of which `have` bytes are at hand needs `need` more, or fails
    /// when that takes it past the cap.
    fn wait_for(&mut self, have: usize, need: usize) -> Result<(), Error> {
        // Decoders ask for at least one byte; a zero would only spin.
        let need = need.max(1);
        if have.saturating_add(need) > limits::MAX_MESSAGE_SIZE {
            return Err(DecodeError::TooLarge("message").into());
        }
        self.need = need;
        Ok(())
    }

    fn reset_partial(&mut self) {
        self.need = 0;
        if self.partial.capacity() > KEEP_CAPACITY {
            self.partial = BytesMut::new();
        } else {
            self.partial.clear();
        }
    }

    /// Reads up to `max` payload bytes: what is buffered first, then straight from the stream.
    /// `None` at the end of the stream.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        if !self.partial.is_empty() {
            // Only after a decode was cancelled mid-message: hand its bytes out in order.
            let take = max.min(self.partial.len());
            let bytes = self.partial.split_to(take).freeze();
            if self.partial.is_empty() {
                self.reset_partial();
            }
            // What is left no longer starts a message: decode it afresh.
            self.need = 0;
            return Ok(Some(bytes));
        }
        if !self.chunk.is_empty() {
            let take = max.min(self.chunk.len());
            return Ok(Some(self.chunk.split_to(take)));
        }
        self.stream.read_chunk(max).await
    }

    /// Bytes copied into the reader and held for a message not yet complete (never above
    /// [`limits::MAX_MESSAGE_SIZE`]).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Waits for the end of the stream, discarding anything that arrives.
    ///
    /// Used on streams where the peer has nothing more to say but may still FIN or reset.
    pub(crate) async fn closed(&mut self) -> Result<(), Error> {
        self.reset_partial();
        self.chunk.clear();
        while self.stream.read_chunk(usize::MAX).await?.is_some() {}
        Ok(())
    }

    /// Asks the peer to stop sending, with the code of `err`.
    pub(crate) fn stop(&mut self, err: &Error) {
        self.stream.stop(err.code());
    }
}

/// Room for the headers a writer encodes before it needs a new buffer: a group header and
/// some 40 frame headers, each written as a slice of one allocation.
const SCRATCH_CAPACITY: usize = 128;

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
            scratch: BytesMut::with_capacity(SCRATCH_CAPACITY),
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

    /// Encodes `msg` to go out with the next [`write_chunks`](Self::write_chunks) or
    /// [`flush`](Self::flush), so that a frame header and its payload take one write.
    pub(crate) fn stage<T: Encode>(&mut self, msg: &T) {
        msg.encode(&mut self.scratch);
    }

    /// Writes what is staged, if anything.
    ///
    /// # Cancel safety
    /// Not cancel safe, as [`encode`](Self::encode).
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        if self.scratch.is_empty() {
            return Ok(());
        }
        let staged = self.scratch.split().freeze();
        self.stream.write_chunk(staged).await
    }

    /// Writes what is staged and then every chunk of `chunks`, without copying them, in one
    /// write; `chunks` is left empty for reuse.
    ///
    /// # Cancel safety
    /// Not cancel safe, as [`encode`](Self::encode).
    pub(crate) async fn write_chunks(&mut self, chunks: &mut Vec<Bytes>) -> Result<(), Error> {
        if !self.scratch.is_empty() {
            chunks.insert(0, self.scratch.split().freeze());
        }
        let result = self.stream.write_all_chunks(chunks).await;
        chunks.clear();
        result
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

    /// Resolves once the peer acknowledged everything written up to the FIN, or with the
    /// peer's code when it stops the stream first (the transport then discards what is
    /// unsent), or the connection's error.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn acknowledged(&mut self) -> Result<(), Error> {
        match self.stream.stopped().await {
            Ok(Some(code)) => Err(Error::from_code(code)),
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use bytes::{Buf, Bytes, BytesMut};

    use super::*;
    use crate::message::{
        ClientSetup, Extensions, FrameHeader, GroupHeader, UniStream, Version, Versions,
    };
    use crate::transport::{memory, Connection, SendStream};

    thread_local! {
        static ATTEMPTS: Cell<usize> = const { Cell::new(0) };
    }

    /// `T`, counting decode attempts (tests run on a current-thread runtime).
    #[derive(Debug, PartialEq)]
    struct Counted<T>(T);

    impl<T: Decode> Decode for Counted<T> {
        fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
            ATTEMPTS.with(|n| n.set(n.get() + 1));
            T::decode(buf).map(Self)
        }
    }

    async fn uni() -> (Connection, Connection, SendStream, Reader) {
        let (a, b) = memory::pair();
        let send = a.open_uni().await.unwrap();
        let recv = b.accept_uni().await.unwrap();
        (a, b, send, Reader::new(recv))
    }

    fn encode<T: Encode>(msg: &T) -> Bytes {
        let mut buf = BytesMut::new();
        msg.encode(&mut buf);
        buf.freeze()
    }

    /// The largest CLIENT_SETUP a peer has reason to send: every version slot used and a
    /// 4 KiB token in an extension.
    fn setup_with_token() -> ClientSetup {
        let mut extensions = Extensions::new();
        extensions.insert(0x6a77, Bytes::from(vec![0x5a; 4096]));
        ClientSetup {
            versions: Versions(vec![Version::FORK_02; limits::MAX_VERSIONS]),
            extensions,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_setup_dribbled_a_byte_at_a_time_costs_at_most_two_attempts_per_field() {
        let setup = setup_with_token();
        let bytes = encode(&setup);
        assert_eq!(bytes.len(), 4617);
        let (_a, _b, mut send, mut reader) = uni().await;
        for i in 0..bytes.len() {
            send.write_chunk(bytes.slice(i..=i)).await.unwrap();
        }
        send.finish().unwrap();

        ATTEMPTS.with(|n| n.set(0));
        let decoded = reader.decode::<Counted<ClientSetup>>().await.unwrap();
        assert_eq!(decoded.0, setup);
        // Fields: the version count, 64 versions, the extension count, one id, one length,
        // one payload. The old reader decoded again at every byte: 4 617 attempts.
        let fields = 1 + limits::MAX_VERSIONS + 4;
        let attempts = ATTEMPTS.with(Cell::get);
        assert!(attempts <= 2 * fields + 1, "{attempts} attempts");
        assert_eq!(reader.buffered(), 0);
        assert!(reader
            .decode_maybe::<ClientSetup>()
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_setup_over_the_cap_is_refused_from_its_declared_lengths() {
        let mut setup = setup_with_token();
        setup.extensions.insert(1, Bytes::from(vec![0; 4096]));
        let bytes = encode(&setup);
        let (_a, _b, mut send, mut reader) = uni().await;
        // Up to the second payload's length: no FIN, the rest never comes.
        let cut = bytes.len() - 4096;
        send.write_chunk(bytes.slice(..cut)).await.unwrap();

        let result = tokio::time::timeout(Duration::from_secs(1), reader.decode::<ClientSetup>())
            .await
            .expect("refused without waiting for the rest");
        assert_eq!(result, Err(Error::Decode(DecodeError::TooLarge("message"))));
        assert_eq!(Error::Decode(DecodeError::TooLarge("message")).code(), 5);
        assert!(reader.buffered() <= limits::MAX_MESSAGE_SIZE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_over_the_cap_in_one_chunk_is_refused() {
        let mut setup = setup_with_token();
        setup.extensions.insert(1, Bytes::from(vec![0; 4096]));
        let (_a, _b, mut send, mut reader) = uni().await;
        send.write_chunk(encode(&setup)).await.unwrap();
        send.finish().unwrap();
        assert_eq!(
            reader.decode::<ClientSetup>().await,
            Err(Error::Decode(DecodeError::TooLarge("message")))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn payload_after_a_header_is_sliced_from_its_chunk_even_when_the_header_is_split() {
        let mut head = BytesMut::new();
        UniStream::Group.encode(&mut head);
        GroupHeader {
            subscribe: 1,
            sequence: 2,
        }
        .encode(&mut head);
        FrameHeader { size: 300 }.encode(&mut head);
        // The two-byte frame header ends one byte into the second chunk.
        let first = head.split_to(head.len() - 1).freeze();
        let mut second = head;
        second.extend_from_slice(&[7; 300]);
        FrameHeader { size: 3 }.encode(&mut second);
        second.extend_from_slice(b"abc");
        let second = second.freeze();

        let (_a, _b, mut send, mut reader) = uni().await;
        send.write_chunk(first).await.unwrap();
        send.write_chunk(second.clone()).await.unwrap();
        send.finish().unwrap();

        assert_eq!(reader.decode::<UniStream>().await, Ok(UniStream::Group));
        reader.decode::<GroupHeader>().await.unwrap();
        assert_eq!(reader.decode::<FrameHeader>().await.unwrap().size, 300);
        let payload = reader.read_chunk(300).await.unwrap().unwrap();
        assert_eq!(payload.len(), 300);
        assert_eq!(payload.as_ptr(), second[1..].as_ptr(), "not copied");
        // A header and its payload within one chunk: sliced too.
        assert_eq!(reader.decode::<FrameHeader>().await.unwrap().size, 3);
        let payload = reader.read_chunk(usize::MAX).await.unwrap().unwrap();
        assert_eq!(payload.as_ptr(), second[second.len() - 3..].as_ptr());
        assert_eq!(reader.decode_maybe::<FrameHeader>().await, Ok(None));
    }

    #[tokio::test(start_paused = true)]
    async fn every_two_way_split_decodes_as_one_chunk_does() {
        let setup = ClientSetup {
            versions: Versions(vec![Version(0xff0b_ad03), Version::FORK_02]),
            extensions: Extensions::new(),
        };
        let mut bytes = BytesMut::new();
        setup.encode(&mut bytes);
        setup.encode(&mut bytes);
        let bytes = bytes.freeze();
        for cut in 0..=bytes.len() {
            let (_a, _b, mut send, mut reader) = uni().await;
            send.write_chunk(bytes.slice(..cut)).await.unwrap();
            send.write_chunk(bytes.slice(cut..)).await.unwrap();
            send.finish().unwrap();
            for _ in 0..2 {
                assert_eq!(reader.decode::<ClientSetup>().await.as_ref(), Ok(&setup));
            }
            assert_eq!(reader.decode_maybe::<ClientSetup>().await, Ok(None));
        }
        // A FIN inside a message.
        let (_a, _b, mut send, mut reader) = uni().await;
        send.write_chunk(bytes.slice(..5)).await.unwrap();
        send.finish().unwrap();
        assert_eq!(
            reader.decode_maybe::<ClientSetup>().await,
            Err(Error::Decode(DecodeError::UnexpectedEnd))
        );
    }
}
