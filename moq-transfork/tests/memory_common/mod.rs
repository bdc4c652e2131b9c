//! Shared harness for the in-memory tests: a hand-driven peer that speaks literal bytes to a
//! session, with the clock paused, so every run takes the same path.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use moq_transfork::message::{
    Announce, AnnouncePlease, BiStream, FrameHeader, GroupHeader, Info, Subscribe, UniStream,
};
use moq_transfork::model::{Track, TrackConsumer};
use moq_transfork::relay::Origins;
use moq_transfork::transport::memory::{self, Config};
use moq_transfork::transport::{Connection, RecvStream, SendStream};
use moq_transfork::{
    Decode, DecodeError, Encode, Error, GroupOrder, Path, Session, SessionOptions,
};

/// CLIENT_SETUP offering 0xff0bad02, after the session stream type (spec §4).
pub const CLIENT_SETUP: &[u8] = &[
    0x00, 0x01, 0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x02, 0x00,
];
/// SERVER_SETUP selecting 0xff0bad02 (spec §4).
pub const SERVER_SETUP: &[u8] = &[0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x02, 0x00];

pub fn path(parts: &[&str]) -> Path {
    Path::from_iter(parts.iter().copied())
}

/// Lets every task run until all wait, moving the paused clock by 1 ms at most.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Awaits `fut` for at most 10 s of (paused, so virtual) time: a test whose fix is missing
/// fails here instead of hanging.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Encodes messages back to back.
pub fn encode(msgs: &[&dyn Fn(&mut BytesMut)]) -> Bytes {
    let mut buf = BytesMut::new();
    for msg in msgs {
        msg(&mut buf);
    }
    buf.freeze()
}

/// The stream type and a SUBSCRIBE for `path` with neutral preferences.
pub fn subscribe(id: u64, path: Path) -> Bytes {
    let msg = Subscribe {
        id,
        path,
        priority: 0,
        group_order: GroupOrder::Descending,
        group_expires: Duration::ZERO,
        group_min: None,
        group_max: None,
    };
    encode(&[&|b| BiStream::Subscribe.encode(b), &|b| msg.encode(b)])
}

/// Reads messages from a stream as they complete.
pub struct Messages {
    pub recv: RecvStream,
    buf: BytesMut,
}

impl Messages {
    pub fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            buf: BytesMut::new(),
        }
    }

    /// The next message, `Ok(None)` at a FIN between messages, `Err` on a reset.
    pub async fn next<T: Decode>(&mut self) -> Result<Option<T>, Error> {
        loop {
            let mut cursor = &self.buf[..];
            match T::decode(&mut cursor) {
                Ok(msg) => {
                    let used = self.buf.len() - cursor.len();
                    self.buf.advance(used);
                    return Ok(Some(msg));
                }
                Err(DecodeError::Short(_)) => {}
                Err(err) => panic!("bad message: {err}"),
            }
            match self.recv.read_chunk(usize::MAX).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None if self.buf.is_empty() => return Ok(None),
                None => panic!("FIN inside a message"),
            }
        }
    }
}

/// Accepts the next bidi stream on `raw` and reads its SUBSCRIBE: returns our half of the
/// stream, the peer's half after the SUBSCRIBE, and the SUBSCRIBE.
pub async fn accept_subscribe(raw: &Connection) -> (SendStream, Messages, Subscribe) {
    let (send, recv) = raw.accept_bi().await.unwrap();
    let mut request = Messages::new(recv);
    assert_eq!(
        request.next::<BiStream>().await,
        Ok(Some(BiStream::Subscribe))
    );
    let subscribe: Subscribe = request.next().await.unwrap().unwrap();
    (send, request, subscribe)
}

/// Answers a SUBSCRIBE on `send` with INFO: neutral preferences and latest group 0.
pub async fn send_info(send: &mut SendStream) {
    let info = Info {
        priority: 0,
        group_order: GroupOrder::Descending,
        group_expires: Duration::ZERO,
        group_latest: 0,
    };
    send.write_chunk(encode(&[&|b| info.encode(b)]))
        .await
        .unwrap();
}

/// Reads the start of a group stream and checks that it is group `sequence` of subscription
/// `subscribe`.
pub async fn expect_group(group: &mut Messages, subscribe: u64, sequence: u64) {
    assert_eq!(group.next::<UniStream>().await, Ok(Some(UniStream::Group)));
    assert_eq!(
        group.next::<GroupHeader>().await,
        Ok(Some(GroupHeader {
            subscribe,
            sequence
        }))
    );
}

/// A raw client that has done SETUP with literal bytes against a server session.
pub async fn raw_client(
    config: Config,
    options: SessionOptions,
) -> (Connection, Session, (SendStream, RecvStream)) {
    let (raw, theirs) = memory::pair_with(config);
    let handshake = async {
        let (mut send, mut recv) = raw.open_bi().await.unwrap();
        send.write_all(CLIENT_SETUP).await.unwrap();
        let mut got = Vec::new();
        while got.len() < SERVER_SETUP.len() {
            got.extend_from_slice(&recv.read_chunk(64).await.unwrap().unwrap());
        }
        assert_eq!(got, SERVER_SETUP);
        (send, recv)
    };
    let (session, stream) = tokio::join!(Session::accept_with(theirs, options), handshake);
    (raw, session.unwrap(), stream)
}

/// A raw server that has done SETUP with literal bytes against a client session.
pub async fn raw_server() -> (Connection, Session, (SendStream, RecvStream)) {
    raw_server_with(SessionOptions::default()).await
}

/// [`raw_server`] against a client session with the given options.
pub async fn raw_server_with(
    options: SessionOptions,
) -> (Connection, Session, (SendStream, RecvStream)) {
    let (raw, theirs) = memory::pair();
    let handshake = async {
        let (mut send, mut recv) = raw.accept_bi().await.unwrap();
        let mut got = Vec::new();
        while got.len() < CLIENT_SETUP.len() {
            got.extend_from_slice(&recv.read_chunk(64).await.unwrap().unwrap());
        }
        assert_eq!(got, CLIENT_SETUP);
        send.write_all(SERVER_SETUP).await.unwrap();
        (send, recv)
    };
    let (session, stream) = tokio::join!(Session::connect_with(theirs, options), handshake);
    (raw, session.unwrap(), stream)
}

/// A FRAME: its header and payload, in one buffer.
pub fn frame(payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        size: payload.len() as u64,
    };
    let mut buf = BytesMut::new();
    header.encode(&mut buf);
    buf.extend_from_slice(payload);
    buf.freeze()
}

/// A hand-driven publisher that answered one SUBSCRIBE of a client session with INFO.
pub struct Upstream {
    pub raw: Connection,
    pub client: Session,
    /// What the client asked for.
    pub subscribe: Subscribe,
    /// Our half of the subscribe stream: GROUP_DROPs, FIN or reset.
    pub send: SendStream,
    /// The client's half, after its SUBSCRIBE: its FIN unsubscribes.
    pub request: Messages,
    _session_stream: (SendStream, RecvStream),
}

impl Upstream {
    /// A client session with `options` subscribes to `track` on a hand-driven publisher, which
    /// answers with INFO (no group yet). Returns the client's consumer too.
    pub async fn start(options: SessionOptions, track: Track) -> (Self, TrackConsumer) {
        let (raw, client, session_stream) = raw_server_with(options).await;
        let consumer = client.subscribe(track);
        let (mut send, request, subscribe) = accept_subscribe(&raw).await;
        send_info(&mut send).await;
        let upstream = Self {
            raw,
            client,
            subscribe,
            send,
            request,
            _session_stream: session_stream,
        };
        (upstream, consumer)
    }

    /// Opens the stream of group `sequence` of the subscription and writes its header.
    pub async fn group(&self, sequence: u64) -> SendStream {
        open_group(&self.raw, self.subscribe.id, sequence).await
    }
}

/// Opens a group stream on `raw` for group `sequence` of subscription `subscribe`, and writes
/// its header.
pub async fn open_group(raw: &Connection, subscribe: u64, sequence: u64) -> SendStream {
    let header = GroupHeader {
        subscribe,
        sequence,
    };
    let mut stream = raw.open_uni().await.unwrap();
    stream
        .write_chunk(encode(&[&|b| UniStream::Group.encode(b), &|b| {
            header.encode(b)
        }]))
        .await
        .unwrap();
    stream
}

/// A hand-driven origin: the relay's session to it (with `options`) is served by `origins`,
/// and it announces one path on the relay's announce request.
pub struct Origin {
    pub raw: Connection,
    _session: Session,
    _announce: SendStream,
    _stream: (SendStream, RecvStream),
}

impl Origin {
    pub async fn start(origins: &Origins, announced: &Path, options: SessionOptions) -> Self {
        let (raw, session, stream) = raw_server_with(options).await;
        tokio::spawn({
            let (origins, session) = (origins.clone(), session.clone());
            async move { origins.serve(&session, Path::new()).await }
        });
        let (mut announce, recv) = raw.accept_bi().await.unwrap();
        let mut please = Messages::new(recv);
        assert_eq!(
            please.next::<BiStream>().await,
            Ok(Some(BiStream::Announce))
        );
        please.next::<AnnouncePlease>().await.unwrap().unwrap();
        let active = Announce::Active {
            suffix: announced.clone(),
        };
        announce
            .write_chunk(encode(&[&|b| active.encode(b)]))
            .await
            .unwrap();
        settle().await;
        Self {
            raw,
            _session: session,
            _announce: announce,
            _stream: stream,
        }
    }
}

impl Origin {
    /// Sends `announce` on the origin's announce stream (the relay's request).
    pub async fn announce(&mut self, announce: Announce) {
        self._announce
            .write_chunk(encode(&[&|b| announce.encode(b)]))
            .await
            .unwrap();
    }

    /// The origin withdraws every path (FIN on its announce stream) and the test lets go of
    /// the relay's session to it. Returns the origin's connection and its session stream,
    /// which keep the connection up: from then on only the relay can hold that session.
    pub fn leave(mut self) -> (Connection, (SendStream, RecvStream)) {
        self._announce.finish().unwrap();
        (self.raw, self._stream)
    }
}

/// A viewer's session and the relay's end of it, whose router is `origins`.
pub async fn viewer(origins: &Origins) -> (Session, Session) {
    let (a, b) = memory::pair();
    let options = SessionOptions {
        router: Some(std::sync::Arc::new(origins.clone())),
        ..Default::default()
    };
    tokio::try_join!(Session::connect(a), Session::accept_with(b, options)).expect("SETUP")
}
