//! The relay's stream reader against hostile chunking and sizes, on the real binary over both
//! transports: a client that dribbles SETUP and SUBSCRIBE a byte per write is served; the
//! largest SETUP a peer has reason to send (64 versions and a 4 KiB token) is accepted; one
//! over the 8 KiB cap is refused with Decode (5), as soon as its declared lengths say so.
//! Meanwhile a healthy subscriber keeps receiving, and the relay's memory stays bounded.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{next_frame, next_group, path, timeout, wait_announced, Publisher, Relay, SCHEMES};
use moq_transfork::coding::limits::{MAX_EXTENSION_SIZE, MAX_MESSAGE_SIZE, MAX_VERSIONS};
use moq_transfork::coding::{Decode, Encode};
use moq_transfork::message::{
    BiStream, ClientSetup, Extensions, FrameHeader, GroupHeader, Info, ServerSetup, Subscribe,
    UniStream, Version, Versions,
};
use moq_transfork::transport::{Connection, RecvStream, SendStream};
use moq_transfork::{Error, GroupConsumer, GroupOrder, GroupProducer, Track};

/// Half-sent SETUPs held open at once, per transport.
const HELD: usize = 8;
/// What the hostile clients may make the relay grow by, in all.
const MAX_RSS_GROWTH_KIB: u64 = 8 * 1024;

/// Messages decoded from raw bytes as they arrive.
struct Messages {
    recv: RecvStream,
    buf: BytesMut,
}

impl Messages {
    fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            buf: BytesMut::new(),
        }
    }

    async fn next<T: Decode>(&mut self) -> T {
        timeout("message", async {
            loop {
                if let Some(msg) = common::try_decode(&mut self.buf) {
                    return msg;
                }
                let chunk = self.recv.read_chunk(usize::MAX).await.unwrap();
                self.buf.extend_from_slice(&chunk.expect("stream ended"));
            }
        })
        .await
    }

    /// The next `size` payload bytes.
    async fn payload(&mut self, size: usize) -> Bytes {
        while self.buf.len() < size {
            let chunk = timeout("payload", self.recv.read_chunk(usize::MAX)).await;
            self.buf
                .extend_from_slice(&chunk.unwrap().expect("stream ended"));
        }
        self.buf.split_to(size).freeze()
    }
}

fn encode2<A: Encode, B: Encode>(a: &A, b: &B) -> Vec<u8> {
    let mut buf = Vec::new();
    a.encode(&mut buf);
    b.encode(&mut buf);
    buf
}

/// Writes `bytes` one byte per write, letting the connection run between writes.
async fn dribble(send: &mut SendStream, bytes: &[u8]) {
    for &byte in bytes {
        send.write_chunk(Bytes::copy_from_slice(&[byte]))
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
}

/// Every version slot used and a 4 KiB token in extension 0x6a77, plus `more` extensions of
/// the largest size.
fn big_setup(more: u64) -> Vec<u8> {
    let mut extensions = Extensions::new();
    for id in std::iter::once(0x6a77).chain(1..=more) {
        extensions.insert(id, Bytes::from(vec![0x5a; MAX_EXTENSION_SIZE]));
    }
    let setup = ClientSetup {
        versions: Versions(vec![Version::FORK_02; MAX_VERSIONS]),
        extensions,
    };
    encode2(&BiStream::Session, &setup)
}

/// Reads group streams from the relay until one carries `text` as its first frame.
async fn expect_group_with(conn: &Connection, text: &str) {
    timeout("group with the frame", async {
        loop {
            let recv = conn.accept_uni().await.unwrap();
            let mut group = Messages::new(recv);
            assert_eq!(group.next::<UniStream>().await, UniStream::Group);
            assert_eq!(group.next::<GroupHeader>().await.subscribe, 0);
            let size = group.next::<FrameHeader>().await.size;
            if group.payload(usize::try_from(size).unwrap()).await == text {
                return;
            }
        }
    })
    .await;
}

/// Writes `text` in a new group and checks that the healthy subscriber receives it.
async fn healthy(
    producer: &mut moq_transfork::TrackProducer,
    consumer: &mut moq_transfork::TrackConsumer,
    text: String,
) -> GroupProducer {
    let mut group = producer.append_group().unwrap();
    group.write_frame(Bytes::from(text.clone()));
    let mut received: GroupConsumer = next_group("healthy group", consumer).await;
    assert_eq!(next_frame("healthy frame", &mut received).await, text);
    group
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dribbled_messages_are_served_and_an_oversized_setup_is_refused() {
    common::init_tracing();
    let relay = Relay::start().await;
    let track = path(&["steady"]);
    let mut publisher = Publisher::start(&relay, "moqf", &track).await;
    let subscriber = relay.session("https").await;
    wait_announced(&subscriber, &track).await;
    let mut consumer = subscriber.subscribe(Track::new(track.clone()));
    let mut groups = vec![healthy(&mut publisher.producer, &mut consumer, "before".into()).await];
    let baseline = relay.rss_kib();

    let mut held = Vec::new();
    for scheme in SCHEMES {
        // SETUP, then SUBSCRIBE, a byte per write: served as if sent whole.
        let conn = relay.connect(scheme).await;
        let (mut send, recv) = conn.open_bi().await.unwrap();
        dribble(&mut send, common::CLIENT_SETUP).await;
        let mut session = Messages::new(recv);
        assert_eq!(
            session.next::<ServerSetup>().await.version,
            Version::FORK_02
        );
        let subscribe = Subscribe {
            id: 0,
            path: track.clone(),
            priority: 0,
            group_order: GroupOrder::Descending,
            group_expires: Duration::ZERO,
            group_min: None,
            group_max: None,
        };
        let (mut send_sub, recv_sub) = conn.open_bi().await.unwrap();
        dribble(&mut send_sub, &encode2(&BiStream::Subscribe, &subscribe)).await;
        let mut replies = Messages::new(recv_sub);
        replies.next::<Info>().await;
        let text = format!("dribbled {scheme}");
        groups.push(healthy(&mut publisher.producer, &mut consumer, text.clone()).await);
        expect_group_with(&conn, &text).await;

        // The largest SETUP a peer has reason to send: accepted.
        let bytes = big_setup(0);
        assert!(bytes.len() - 1 <= MAX_MESSAGE_SIZE);
        let big = relay.connect(scheme).await;
        let (mut send, recv) = big.open_bi().await.unwrap();
        send.write_chunk(Bytes::from(bytes)).await.unwrap();
        assert_eq!(
            Messages::new(recv).next::<ServerSetup>().await.version,
            Version::FORK_02
        );

        // One more 4 KiB extension takes it over the cap: refused with Decode (5) once the
        // second length arrives, the rest never sent.
        let bytes = big_setup(1);
        let over = relay.connect(scheme).await;
        let (mut send, _recv) = over.open_bi().await.unwrap();
        send.write_chunk(Bytes::copy_from_slice(
            &bytes[..bytes.len() - MAX_EXTENSION_SIZE],
        ))
        .await
        .unwrap();
        let reason = timeout("oversized SETUP refused", over.closed()).await;
        assert_eq!(
            reason.code(),
            Error::Decode(moq_transfork::DecodeError::Remote).code(),
            "{scheme}: {reason:?}"
        );
        assert_eq!(reason.code(), 5);

        // Half-sent SETUPs held open: each costs the relay at most the cap.
        for _ in 0..HELD {
            let conn = relay.connect(scheme).await;
            let (mut send, recv) = conn.open_bi().await.unwrap();
            let bytes = big_setup(0);
            send.write_chunk(Bytes::copy_from_slice(&bytes[..bytes.len() - 1]))
                .await
                .unwrap();
            held.push((conn, send, recv));
        }

        let text = format!("after {scheme}");
        groups.push(healthy(&mut publisher.producer, &mut consumer, text).await);
        held.push((conn, send_sub, replies.recv));
    }

    let (baseline, now) = (baseline.unwrap_or(0), relay.rss_kib().unwrap_or(0));
    eprintln!("relay RSS {baseline} KiB -> {now} KiB");
    assert!(
        now.saturating_sub(baseline) < MAX_RSS_GROWTH_KIB,
        "relay memory grew from {baseline} KiB to {now} KiB"
    );
    drop(held);
    groups.push(healthy(&mut publisher.producer, &mut consumer, "end".into()).await);
}
