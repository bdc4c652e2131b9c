//! The session's stream reader fed input in chunks the input chooses.
//!
//! The bytes travel over an in-memory uni stream, one write per chunk, and are read by the
//! reader every session stream uses (`FuzzReader`): a run of messages of one type (for frame
//! headers, each followed by its payload, read with `read_chunk`), until the FIN or an error.
//! Checked against a one-shot decode of the whole input:
//!
//! - the same messages and payload bytes, and the same end (a FIN between messages, a FIN
//!   inside a payload, or the same decode error; a message that does not complete within the
//!   cap is `TooLarge("message")`, and a malformed message whose size is already over the cap
//!   may be refused as that);
//! - no panic, and never more than the cap held for an incomplete message.
//!
//! Input: byte 0 picks the message type, byte 1 how many chunk-length bytes follow (0: one
//! byte per chunk), then those bytes (used in turn: `b + 1` bytes for `b < 0xf0`, else
//! `256 << (b & 15)`), then the stream's bytes.
#![no_main]

use std::fmt::Debug;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use moq_transfork::coding::limits::MAX_MESSAGE_SIZE;
use moq_transfork::coding::Decode;
use moq_transfork::message::{
    Announce, AnnouncePlease, BiStream, ClientSetup, Fetch, FrameHeader, GroupDrop, GroupHeader,
    Info, InfoRequest, ServerSetup, Subscribe, SubscribeUpdate, UniStream,
};
use moq_transfork::transport::memory;
use moq_transfork::{DecodeError, Error, FuzzReader, Path};

thread_local! {
    /// One runtime for every input: building one per input would cost more than the input.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
}

/// A message type the reader is asked for; frame headers are followed by a payload.
trait Kind: Decode + PartialEq + Debug {
    fn payload(&self) -> u64 {
        0
    }
}

impl Kind for BiStream {}
impl Kind for UniStream {}
impl Kind for ClientSetup {}
impl Kind for ServerSetup {}
impl Kind for AnnouncePlease {}
impl Kind for Announce {}
impl Kind for Subscribe {}
impl Kind for SubscribeUpdate {}
impl Kind for GroupDrop {}
impl Kind for Info {}
impl Kind for InfoRequest {}
impl Kind for Fetch {}
impl Kind for GroupHeader {}
impl Kind for Path {}
impl Kind for FrameHeader {
    fn payload(&self) -> u64 {
        self.size
    }
}

#[derive(Debug, PartialEq)]
enum Item<T> {
    Msg(T),
    Payload(Vec<u8>),
}

#[derive(Debug, PartialEq)]
enum End {
    /// A FIN between messages.
    Fin,
    /// A FIN inside a payload.
    PayloadCut,
    Failed(DecodeError),
}

/// What the reader must yield: the whole input decoded at once.
fn one_shot<T: Kind>(data: Bytes) -> (Vec<Item<T>>, End) {
    let mut items = Vec::new();
    let mut rest = data;
    loop {
        if rest.is_empty() {
            return (items, End::Fin);
        }
        let mut cursor = rest.clone();
        match T::decode(&mut cursor) {
            Ok(msg) => {
                if rest.len() - cursor.len() > MAX_MESSAGE_SIZE {
                    return (items, End::Failed(DecodeError::TooLarge("message")));
                }
                rest = cursor;
                let size = msg.payload();
                items.push(Item::Msg(msg));
                if size > 0 {
                    let take = usize::try_from(size).unwrap_or(usize::MAX).min(rest.len());
                    items.push(Item::Payload(rest.split_to(take).to_vec()));
                    if (take as u64) < size {
                        return (items, End::PayloadCut);
                    }
                }
            }
            Err(DecodeError::Short(need)) => {
                let err = if rest.len().saturating_add(need) > MAX_MESSAGE_SIZE {
                    DecodeError::TooLarge("message")
                } else {
                    DecodeError::UnexpectedEnd
                };
                return (items, End::Failed(err));
            }
            Err(err) => return (items, End::Failed(err)),
        }
    }
}

/// What the reader yields with `data` written in `pieces`.
async fn chunked<T: Kind>(pieces: Vec<Bytes>) -> (Vec<Item<T>>, End) {
    let (a, b) = memory::pair();
    let mut send = a.open_uni().await.expect("open");
    let recv = b.accept_uni().await.expect("accept");
    let write = async move {
        for piece in pieces {
            // Fails once the reader has given up and dropped the stream.
            if send.write_chunk(piece).await.is_err() {
                return;
            }
        }
        let _ = send.finish();
    };
    let read = async move {
        let mut reader = FuzzReader::new(recv);
        let mut items = Vec::new();
        loop {
            let result = reader.decode_maybe::<T>().await;
            assert!(reader.buffered() <= MAX_MESSAGE_SIZE, "held over the cap");
            let msg = match result {
                Ok(Some(msg)) => msg,
                Ok(None) => return (items, End::Fin),
                Err(Error::Decode(err)) => return (items, End::Failed(err)),
                Err(err) => panic!("not a decode error: {err:?}"),
            };
            let mut left = msg.payload();
            items.push(Item::Msg(msg));
            if left == 0 {
                continue;
            }
            let mut payload = Vec::new();
            while left > 0 {
                let max = usize::try_from(left).unwrap_or(usize::MAX);
                match reader.read_chunk(max).await.expect("payload") {
                    Some(chunk) => {
                        assert!(!chunk.is_empty() && chunk.len() <= max, "chunk over max");
                        left -= chunk.len() as u64;
                        payload.extend_from_slice(&chunk);
                    }
                    None => {
                        items.push(Item::Payload(payload));
                        return (items, End::PayloadCut);
                    }
                }
            }
            items.push(Item::Payload(payload));
        }
    };
    let ((), result) = tokio::join!(write, read);
    drop((a, b));
    result
}

fn check<T: Kind>(lengths: &[u8], data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut next = lengths.iter().cycle();
    while at < data.len() {
        let len = match next.next() {
            None => 1,
            Some(&b) if b < 0xf0 => usize::from(b) + 1,
            Some(&b) => 256 << (b & 15),
        };
        let end = data.len().min(at + len);
        pieces.push(data.slice(at..end));
        at = end;
    }

    let (items, end) = RUNTIME.with(|rt| rt.block_on(chunked::<T>(pieces)));
    let (want_items, want_end) = one_shot::<T>(data);
    assert_eq!(items, want_items, "messages differ");
    match (&end, &want_end) {
        // Refused from its size before the bytes that are malformed arrived.
        (End::Failed(DecodeError::TooLarge("message")), End::Failed(_)) => {}
        _ => assert_eq!(end, want_end, "ends differ"),
    }
}

fuzz_target!(|input: &[u8]| {
    let [kind, count, rest @ ..] = input else {
        return;
    };
    let count = usize::from(*count % 17).min(rest.len());
    let (lengths, data) = rest.split_at(count);
    match kind % 15 {
        0 => check::<BiStream>(lengths, data),
        1 => check::<UniStream>(lengths, data),
        2 => check::<ClientSetup>(lengths, data),
        3 => check::<ServerSetup>(lengths, data),
        4 => check::<AnnouncePlease>(lengths, data),
        5 => check::<Announce>(lengths, data),
        6 => check::<Subscribe>(lengths, data),
        7 => check::<SubscribeUpdate>(lengths, data),
        8 => check::<GroupDrop>(lengths, data),
        9 => check::<Info>(lengths, data),
        10 => check::<InfoRequest>(lengths, data),
        11 => check::<Fetch>(lengths, data),
        12 => check::<GroupHeader>(lengths, data),
        13 => check::<Path>(lengths, data),
        _ => check::<FrameHeader>(lengths, data),
    }
});
