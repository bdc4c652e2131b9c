//! Literal bytes against a session over real QUIC: the handshake, and bad input handled as the
//! spec says (the offending stream is reset with the right code, the session lives on).

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::{timeout, SCHEMES};
use moq_transfork::transport::{Connection, Endpoint, RecvStream, SendStream};
use moq_transfork::{Error, Session};

const CLIENT_SETUP: &[u8] = &[
    0x00, 0x01, 0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x02, 0x00,
];
const SERVER_SETUP: &[u8] = &[0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x02, 0x00];
/// SUBSCRIBE {id 0, ["clock"], prio 0, desc, expires 0, none, none} (spec §14.9).
const SUBSCRIBE_CLOCK: &[u8] = &[
    0x02, 0x00, 0x01, 0x05, b'c', b'l', b'o', b'c', b'k', 0x80, 0x01, 0x00, 0x00, 0x00,
];

/// A server session on a fresh endpoint; returns the endpoint's address and the accept task.
fn serve() -> (
    Endpoint,
    SocketAddr,
    tokio::task::JoinHandle<Result<Session, Error>>,
) {
    let (endpoint, addr) = common::server();
    let task = {
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let incoming = endpoint.accept().await.expect("endpoint closed");
            let conn = incoming.accept().await?;
            Session::accept(conn).await
        })
    };
    (endpoint, addr, task)
}

async fn read_all(recv: &mut RecvStream) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = timeout("read", recv.read_chunk(usize::MAX)).await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Opens the session stream with literal bytes and checks the literal SERVER_SETUP.
async fn handshake(conn: &Connection) -> (SendStream, RecvStream) {
    let (mut send, mut recv) = timeout("open", conn.open_bi()).await.unwrap();
    send.write_all(CLIENT_SETUP).await.unwrap();
    let mut got = Vec::new();
    while got.len() < SERVER_SETUP.len() {
        let chunk = timeout("setup", recv.read_chunk(64))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, SERVER_SETUP);
    (send, recv)
}

/// Connects a raw client to `addr`, exchanges the literal handshake, and waits for the server
/// session `accepted`. Returns the client endpoint, the connection, its session stream (which
/// keeps the session alive) and the server session.
async fn connect_and_handshake(
    scheme: &str,
    addr: SocketAddr,
    accepted: tokio::task::JoinHandle<Result<Session, Error>>,
) -> (Endpoint, Connection, (SendStream, RecvStream), Session) {
    let (client, conn) = common::connect_raw(scheme, addr).await;
    let session_stream = handshake(&conn).await;
    let server = timeout("accept", accepted).await.unwrap().unwrap();
    (client, conn, session_stream, server)
}

/// Sends `bytes` on a new bidi stream and returns how the server answered.
async fn request(conn: &Connection, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let (mut send, mut recv) = timeout("open", conn.open_bi()).await?;
    send.write_chunk(Bytes::copy_from_slice(bytes)).await?;
    read_all(&mut recv).await
}

#[tokio::test]
async fn bad_streams_are_reset_and_the_session_lives() {
    common::init_tracing();
    for scheme in SCHEMES {
        let (_endpoint, addr, accepted) = serve();
        let (_client, conn, _session_stream, server) =
            connect_and_handshake(scheme, addr, accepted).await;

        // An unknown bidi stream type: reset with Decode (spec §5).
        assert!(
            matches!(request(&conn, &[0x3f]).await, Err(Error::Decode(_))),
            "{scheme}"
        );
        // Invalid UTF-8 in a path.
        let bad_utf8 = [
            0x02, 0x00, 0x01, 0x02, 0xff, 0xfe, 0x80, 0x01, 0x00, 0x00, 0x00,
        ];
        assert!(
            matches!(request(&conn, &bad_utf8).await, Err(Error::Decode(_))),
            "{scheme}"
        );
        // A message over the size cap is refused without buffering it all.
        let mut huge = vec![0x02, 0x00, 0x01, 0x80, 0x10, 0x00, 0x00];
        huge.resize(huge.len() + 70_000, b'a');
        assert!(
            matches!(request(&conn, &huge).await, Err(Error::Decode(_))),
            "{scheme}"
        );
        // A second session stream.
        assert_eq!(
            request(&conn, CLIENT_SETUP).await.err(),
            Some(Error::UnexpectedStream),
            "{scheme}"
        );
        // An unknown uni stream type is stopped with Decode.
        let mut uni = conn.open_uni().await.unwrap();
        uni.write_all(&[0x05]).await.unwrap();
        let stopped = timeout("stopped", uni.stopped()).await.unwrap();
        assert_eq!(stopped, Some(5), "{scheme}");

        // The session still answers: NotFound for a track nobody publishes.
        assert_eq!(
            request(&conn, SUBSCRIBE_CLOCK).await.err(),
            Some(Error::NotFound),
            "{scheme}"
        );
        drop(server);
    }
}

#[tokio::test]
async fn a_client_without_our_version_is_refused_with_version() {
    for scheme in SCHEMES {
        let (_endpoint, addr, accepted) = serve();
        let (_client, conn) = common::connect_raw(scheme, addr).await;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        // CLIENT_SETUP offering only 0xff0bad03.
        send.write_all(&[
            0x00, 0x01, 0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x03, 0x00,
        ])
        .await
        .unwrap();
        assert_eq!(
            timeout("accept", accepted).await.unwrap().err(),
            Some(Error::Version)
        );
        let reply = read_all(&mut recv).await;
        assert!(reply.is_err(), "{scheme}: {reply:?}");
        let closed = timeout("close", conn.closed()).await;
        assert_eq!(closed, Error::Version, "{scheme}");
    }
}

#[tokio::test]
async fn first_stream_must_be_the_session_stream() {
    for scheme in SCHEMES {
        let (_endpoint, addr, accepted) = serve();
        let (_client, conn) = common::connect_raw(scheme, addr).await;
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(SUBSCRIBE_CLOCK).await.unwrap();
        assert_eq!(
            timeout("accept", accepted).await.unwrap().err(),
            Some(Error::UnexpectedStream),
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn a_group_for_an_unknown_subscription_is_stopped_with_cancel() {
    for scheme in SCHEMES {
        let (_endpoint, addr, accepted) = serve();
        let (_client, conn, _session_stream, _server) =
            connect_and_handshake(scheme, addr, accepted).await;
        // Spec §14.14: a group stream for subscribe id 0, which the server never made.
        let mut uni = conn.open_uni().await.unwrap();
        uni.write_all(&[0x00, 0x00, 0x07, 0x06, b'h', b'e', b'l', b'l', b'o', b' '])
            .await
            .unwrap();
        let stopped = timeout("stopped", uni.stopped()).await.unwrap();
        assert_eq!(stopped, Some(0), "{scheme}");
    }
}

/// Reads a subscribe stream message by message.
struct MessageReader {
    recv: RecvStream,
    buf: Vec<u8>,
}

impl MessageReader {
    async fn next<T: moq_transfork::Decode>(&mut self) -> T {
        loop {
            let mut cursor = &self.buf[..];
            match T::decode(&mut cursor) {
                Ok(msg) => {
                    let used = self.buf.len() - cursor.len();
                    self.buf.drain(..used);
                    return msg;
                }
                Err(moq_transfork::DecodeError::Short(_)) => {}
                Err(err) => panic!("bad message: {err}"),
            }
            let chunk = self.recv.read_chunk(usize::MAX).await.unwrap();
            self.buf
                .extend_from_slice(&chunk.expect("subscribe stream ended"));
        }
    }
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_gets_old_groups_dropped() {
    use moq_transfork::message::{GroupDrop, Info};
    use moq_transfork::model::Track;
    use moq_transfork::Path;

    // Larger than a stream's receive window (4 MiB), so each unread group stalls its stream
    // and none is ever complete: a group that fitted would be delivered whole and sit
    // unread in the client, and eight of them would fill its 16 MiB connection window, so
    // not even GROUP_DROP could get out (a release build publishes that fast).
    const GROUP_SIZE: usize = 8 << 20;
    const MAX_GROUPS: u64 = 200;
    common::init_tracing();
    for scheme in SCHEMES {
        let (_endpoint, addr, accepted) = serve();
        let (_client, conn, _session_stream, server) =
            connect_and_handshake(scheme, addr, accepted).await;
        let (producer, consumer) = Track::new(Path::from_iter(["clock"])).produce();
        server.publish(consumer).unwrap();

        // Subscribe, then never accept a single group stream.
        let (mut send, recv) = conn.open_bi().await.unwrap();
        send.write_all(SUBSCRIBE_CLOCK).await.unwrap();
        let mut reader = MessageReader {
            recv,
            buf: Vec::new(),
        };
        let info: Info = timeout("info", reader.next()).await;
        assert_eq!(info.group_order, moq_transfork::GroupOrder::Descending);

        // A live publisher: a new group every 20 ms until the publisher gives up on the oldest
        // and says so with GROUP_DROP (spec §6.6) instead of queueing without bound.
        let payload = Bytes::from(vec![7u8; GROUP_SIZE]);
        let mut pacing = tokio::time::interval(std::time::Duration::from_millis(20));
        let drop: GroupDrop = timeout("group drop", async {
            let next_drop = reader.next::<GroupDrop>();
            tokio::pin!(next_drop);
            for _ in 0..MAX_GROUPS {
                let mut group = producer.append_group().unwrap();
                group.write_frame(payload.clone());
                tokio::select! {
                    drop = &mut next_drop => return drop,
                    _ = pacing.tick() => {}
                }
            }
            panic!("no GROUP_DROP after {MAX_GROUPS} unread groups");
        })
        .await;
        assert!(
            producer.latest().unwrap() > drop.sequence,
            "{scheme}: {drop:?}"
        );
        assert_eq!(drop.code, Error::Cancel.code(), "{scheme}");
        // The stalled subscriber holds at most the in-flight window of groups, whatever the
        // publisher sends: the track's cache stays bounded too.
        assert!(producer.cached_groups() <= 8, "{scheme}");
        drop_guard(server);
    }
}

/// Keeps a value alive until the end of a test iteration.
fn drop_guard<T>(_value: T) {}

#[tokio::test]
async fn a_subscriber_that_keeps_up_gets_no_group_drop() {
    // One-frame groups, one every 2 ms, over a path with a 60 ms round trip: about 30 groups
    // are finished but not yet acknowledged at any time, more than `max_inflight_groups` (8).
    // A group that is fully written no longer counts as in flight, so a subscriber that
    // reads everything at once is told of no drop.
    const GROUPS: usize = 100;
    for scheme in SCHEMES {
        let (endpoint, addr, accepted) = serve();
        let proxy = DelayProxy::start(addr, std::time::Duration::from_millis(30)).await;
        let (_client, conn, _session_stream, publisher) =
            connect_and_handshake(scheme, proxy.addr, accepted).await;
        let (producer, consumer) =
            moq_transfork::Track::new(moq_transfork::Path::from_iter(["clock"])).produce();
        publisher.publish(consumer).unwrap();

        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(SUBSCRIBE_CLOCK).await.unwrap();
        // INFO {prio 0, desc, expires 0, latest 0}, then nothing: every byte that follows on
        // the subscribe stream would be a GROUP_DROP.
        let mut bytes = Vec::new();
        while bytes.len() < 4 {
            let chunk = timeout("INFO", recv.read_chunk(usize::MAX)).await;
            bytes.extend_from_slice(&chunk.unwrap().unwrap());
        }
        let subscribe_stream = tokio::spawn(async move {
            while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX).await {
                bytes.extend_from_slice(&chunk);
            }
            bytes
        });
        let groups = {
            let conn = conn.clone();
            tokio::spawn(async move {
                let mut readers = tokio::task::JoinSet::new();
                for _ in 0..GROUPS {
                    let mut uni = conn.accept_uni().await.unwrap();
                    readers.spawn(async move { read_all(&mut uni).await.unwrap() });
                }
                readers.join_all().await
            })
        };
        let mut interval = tokio::time::interval(std::time::Duration::from_millis(2));
        for sequence in 0..GROUPS {
            interval.tick().await;
            let mut group = producer.create_group(sequence as u64).unwrap();
            group.write_frame(Bytes::from_static(b"x"));
            group.finish();
        }
        let groups = timeout("every group", groups).await.unwrap();
        // Each group stream: type 0, subscribe id 0, its sequence, and one 1-byte frame.
        assert!(
            groups.iter().all(|g| g.ends_with(&[0x01, b'x'])),
            "{scheme}"
        );
        conn.close(0, "done");
        let subscribe_stream = timeout("subscribe stream", subscribe_stream).await.unwrap();
        assert_eq!(
            subscribe_stream,
            [0x80, 0x01, 0x00, 0x00],
            "{scheme}: GROUP_DROP sent"
        );
        drop(endpoint);
    }
}

/// A UDP forwarder that delays every datagram in both directions, to give loopback a round
/// trip time. It serves one client.
struct DelayProxy {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    async fn start(server: std::net::SocketAddr, delay: std::time::Duration) -> Self {
        use std::sync::Arc;
        use tokio::net::UdpSocket;
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let addr = front.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut client = None;
            let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
            loop {
                tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut up) => {
                        client = Some(from);
                        let (back, packet) = (back.clone(), up[..n].to_vec());
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = back.send(&packet).await;
                        });
                    }
                    Ok(n) = back.recv(&mut down) => {
                        let Some(client) = client else { continue };
                        let (front, packet) = (front.clone(), down[..n].to_vec());
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = front.send_to(&packet, client).await;
                        });
                    }
                }
            }
        });
        Self { addr, task }
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
