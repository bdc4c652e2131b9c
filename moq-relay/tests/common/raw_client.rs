//! An independent subscriber on raw quinn (ALPN `moqf-02`), written from the wire spec rather
//! than with the library's session, so it measures what the relay sends and nothing else.
//!
//! Its flow-control windows and its reading rate are chosen by the test: with small windows
//! and a bounded read rate it extends credit slowly, as a slow device or a throttled tab does.
//! Group streams are read concurrently, one task each, in the order their data arrives, so no
//! track is favoured by the client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use moq_transfork::message::{BiStream, FrameHeader, GroupHeader, Info, Subscribe, UniStream};
use moq_transfork::transport::ClientTls;
use moq_transfork::{Encode, GroupOrder, Path};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::{timeout, try_decode, CLIENT_SETUP, SERVER_SETUP};

/// How the client reads.
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig {
    /// What the relay may send on all streams together before the client reads it (QUIC
    /// `initial_max_data`); `None` for quinn's default (unlimited).
    pub receive_window: Option<u32>,
    /// What the relay may send on one stream before the client reads it; `None` for quinn's
    /// default (1.25 MB).
    pub stream_receive_window: Option<u32>,
    /// Payload bytes per second the application reads, across all group streams; `None` reads
    /// as fast as data comes.
    pub read_rate: Option<u64>,
    /// The most bytes one read takes from a stream.
    pub read_chunk: usize,
}

impl ClientConfig {
    /// A client that reads as fast as data arrives, with quinn's default windows.
    pub fn fast() -> Self {
        Self {
            receive_window: None,
            stream_receive_window: None,
            read_rate: None,
            read_chunk: 64 * 1024,
        }
    }
}

/// How one group stream ended.
#[derive(Clone, Copy, Debug)]
pub struct GroupEnd {
    /// The subscription it answers.
    pub subscribe: u64,
    /// The group's sequence.
    pub sequence: u64,
    /// When the client read the end of the stream (or its reset).
    pub at: Instant,
    /// Ended with a FIN after whole frames; otherwise reset or cut short.
    pub complete: bool,
    /// The relay's reset code, if it reset the stream.
    pub reset: Option<u64>,
    /// Frames begun.
    pub frames: u64,
    /// Payload bytes read.
    pub payload: u64,
}

/// A raw subscriber connected to one relay address.
pub struct RawClient {
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
    /// The session stream; dropping it would end the session.
    _session: (quinn::SendStream, quinn::RecvStream),
    /// Payload bytes read so far, per subscribe id.
    received: Arc<Mutex<HashMap<u64, u64>>>,
    ends: mpsc::UnboundedReceiver<GroupEnd>,
    next_id: AtomicU64,
    /// The group-stream readers and the subscribe-stream drains.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.conn.close(0u32.into(), b"done");
        for task in self.tasks.get_mut().unwrap().iter() {
            task.abort();
        }
    }
}

/// A subscription opened by [`RawClient::subscribe`].
#[derive(Debug)]
pub struct RawSubscription {
    /// The SUBSCRIBE id, which its group streams carry.
    pub id: u64,
    /// From the SUBSCRIBE being written to its INFO being decoded; `None` when the INFO did
    /// not come within the wait.
    pub info_latency: Option<Duration>,
}

impl RawClient {
    /// Connects to `addr` (a relay, or a shaper in front of one) and runs SETUP.
    pub async fn connect(addr: SocketAddr, config: ClientConfig) -> Self {
        let mut transport = quinn::TransportConfig::default();
        if let Some(window) = config.receive_window {
            transport.receive_window(window.into());
        }
        if let Some(window) = config.stream_receive_window {
            transport.stream_receive_window(window.into());
        }
        // As many group streams at once as the relay itself allows, so the stream limit is
        // never what holds the relay back.
        transport.max_concurrent_uni_streams(256u32.into());
        let tls = ClientTls::disable_verify()
            .client_config(moq_transfork::transport::ALPN_QUIC)
            .unwrap();
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(transport));
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = timeout(
            "raw QUIC connect",
            endpoint.connect_with(client, addr, "localhost").unwrap(),
        )
        .await
        .unwrap();

        let (mut send, mut recv) = timeout("open the session stream", conn.open_bi())
            .await
            .unwrap();
        timeout("CLIENT_SETUP", send.write_all(CLIENT_SETUP))
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < SERVER_SETUP.len() {
            let chunk = timeout("SERVER_SETUP", recv.read_chunk(64, true)).await;
            got.extend_from_slice(&chunk.unwrap().expect("session stream ended").bytes);
        }
        assert_eq!(got, SERVER_SETUP);

        let received = Arc::new(Mutex::new(HashMap::new()));
        let (ends_tx, ends) = mpsc::unbounded_channel();
        let bucket = config.read_rate.map(|rate| {
            Arc::new(tokio::sync::Mutex::new(Bucket::new(
                rate,
                config.read_chunk,
            )))
        });
        let accept = tokio::spawn(accept_groups(
            conn.clone(),
            config.read_chunk,
            bucket,
            received.clone(),
            ends_tx,
        ));
        Self {
            conn,
            _endpoint: endpoint,
            _session: (send, recv),
            received,
            ends,
            next_id: AtomicU64::new(0),
            tasks: Mutex::new(vec![accept]),
        }
    }

    /// Subscribes to `path` and waits (at most `wait`) for its INFO. The subscribe stream is
    /// then drained (GROUP_DROPs) without limit: control bytes are not what the client
    /// throttles.
    pub async fn subscribe(
        &self,
        path: &Path,
        priority: i8,
        order: GroupOrder,
        wait: Duration,
    ) -> RawSubscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut request = BytesMut::new();
        BiStream::Subscribe.encode(&mut request);
        Subscribe {
            id,
            path: path.clone(),
            priority,
            group_order: order,
            group_expires: Duration::ZERO,
            group_min: None,
            group_max: None,
        }
        .encode(&mut request);
        let (mut send, mut recv) = timeout("open a subscribe stream", self.conn.open_bi())
            .await
            .unwrap();
        let start = Instant::now();
        timeout("SUBSCRIBE", send.write_all(&request))
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let info = tokio::time::timeout(wait, async {
            while try_decode::<Info>(&mut buf).is_none() {
                let chunk = recv.read_chunk(usize::MAX, true).await.unwrap();
                buf.extend_from_slice(&chunk.expect("subscribe stream ended").bytes);
            }
        })
        .await;
        let info_latency = info.is_ok().then(|| start.elapsed());
        self.tasks.lock().unwrap().push(tokio::spawn(async move {
            let _send = send;
            while let Ok(Some(_)) = recv.read_chunk(usize::MAX, true).await {}
        }));
        RawSubscription { id, info_latency }
    }

    /// Payload bytes read so far on the groups of subscription `id`.
    pub fn received(&self, id: u64) -> u64 {
        self.received.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    /// Every group stream that ended since the last call.
    pub fn group_ends(&mut self) -> Vec<GroupEnd> {
        let mut ends = Vec::new();
        while let Ok(end) = self.ends.try_recv() {
            ends.push(end);
        }
        ends
    }

    /// The QUIC connection's statistics.
    pub fn stats(&self) -> quinn::ConnectionStats {
        self.conn.stats()
    }
}

/// The application's reading budget: `rate` bytes per second shared by all group streams.
/// Each read is paid for after it is made, in turn (the lock is fair), so the client
/// releases credit at the bounded rate, give or take one chunk per stream.
struct Bucket {
    rate: f64,
    burst: f64,
    /// Negative when in debt.
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, burst: usize) -> Self {
        Self {
            rate: rate as f64,
            burst: burst as f64,
            tokens: 0.0,
            last: Instant::now(),
        }
    }
}

/// Pays for `bytes` read, waiting (in turn) until the budget covers them. This paces the
/// measurement; it synchronises nothing.
async fn pay(bucket: &tokio::sync::Mutex<Bucket>, bytes: usize) {
    let mut bucket = bucket.lock().await;
    let now = Instant::now();
    let refill = now.duration_since(bucket.last).as_secs_f64() * bucket.rate;
    bucket.tokens = (bucket.tokens + refill).min(bucket.burst) - bytes as f64;
    bucket.last = now;
    if bucket.tokens < 0.0 {
        let debt = Duration::from_secs_f64(-bucket.tokens / bucket.rate);
        tokio::time::sleep(debt).await;
    }
}

/// Accepts group streams and reads each in a task of its own.
async fn accept_groups(
    conn: quinn::Connection,
    chunk: usize,
    bucket: Option<Arc<tokio::sync::Mutex<Bucket>>>,
    received: Arc<Mutex<HashMap<u64, u64>>>,
    ends: mpsc::UnboundedSender<GroupEnd>,
) {
    let mut readers = JoinSet::new();
    while let Ok(recv) = conn.accept_uni().await {
        let (bucket, received, ends) = (bucket.clone(), received.clone(), ends.clone());
        readers.spawn(read_group(recv, chunk, bucket, received, ends));
        // Reap finished readers so the set stays small.
        while readers.try_join_next().is_some() {}
    }
}

/// Reads one group stream to its end, counting payload bytes as they are read.
async fn read_group(
    mut recv: quinn::RecvStream,
    chunk: usize,
    bucket: Option<Arc<tokio::sync::Mutex<Bucket>>>,
    received: Arc<Mutex<HashMap<u64, u64>>>,
    ends: mpsc::UnboundedSender<GroupEnd>,
) {
    let mut parser = GroupParser::default();
    let mut reset = None;
    let complete = loop {
        match recv.read_chunk(chunk, true).await {
            Ok(Some(data)) => {
                if let Some(bucket) = &bucket {
                    pay(bucket, data.bytes.len()).await;
                }
                let payload = parser.push(&data.bytes);
                if let Some(header) = parser.header {
                    *received
                        .lock()
                        .unwrap()
                        .entry(header.subscribe)
                        .or_default() += payload;
                }
            }
            Ok(None) => break parser.header.is_some() && parser.remaining == 0,
            Err(err) => {
                if let quinn::ReadError::Reset(code) = err {
                    reset = Some(code.into_inner());
                }
                break false;
            }
        }
    };
    if let Some(header) = parser.header {
        let _ = ends.send(GroupEnd {
            subscribe: header.subscribe,
            sequence: header.sequence,
            at: Instant::now(),
            complete,
            reset,
            frames: parser.frames,
            payload: parser.payload,
        });
    }
}

/// A group stream's bytes as they arrive: the type and GROUP header, then FRAME headers each
/// followed by their payload (spec §5.6).
#[derive(Default)]
struct GroupParser {
    buf: BytesMut,
    typed: bool,
    header: Option<GroupHeader>,
    /// Payload bytes still due in the current frame.
    remaining: u64,
    frames: u64,
    payload: u64,
}

impl GroupParser {
    /// Takes in `data` and returns how many of its bytes were payload.
    fn push(&mut self, data: &Bytes) -> u64 {
        self.buf.extend_from_slice(data);
        let mut payload = 0;
        loop {
            if self.remaining > 0 {
                let take = self.remaining.min(self.buf.len() as u64);
                if take == 0 {
                    break;
                }
                let _ = self.buf.split_to(take as usize);
                self.remaining -= take;
                payload += take;
            } else if !self.typed {
                match try_decode::<UniStream>(&mut self.buf) {
                    Some(kind) => {
                        assert_eq!(kind, UniStream::Group);
                        self.typed = true;
                    }
                    None => break,
                }
            } else if self.header.is_none() {
                match try_decode::<GroupHeader>(&mut self.buf) {
                    Some(header) => self.header = Some(header),
                    None => break,
                }
            } else {
                match try_decode::<FrameHeader>(&mut self.buf) {
                    Some(frame) => {
                        self.remaining = frame.size;
                        self.frames += 1;
                    }
                    None => break,
                }
            }
        }
        self.payload += payload;
        payload
    }
}
