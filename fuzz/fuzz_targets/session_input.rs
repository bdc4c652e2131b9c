//! Drives a server [`Session`] over the in-memory transport from a hand-driven peer whose
//! every move comes from the fuzz input.
//!
//! The input is a small script (see [`Op`]): open streams and write raw bytes or well-formed
//! messages on them, FIN, reset, stop or drop them, read what the session sent, advance the
//! paused clock, and act on the server side too (subscribe to the peer, ask for announcements,
//! INFO and FETCH, produce groups, close the track). Most inputs start with the canonical
//! CLIENT_SETUP, so the fuzzer spends its time past the handshake.
//!
//! Everything is bounded: at most [`MAX_OPS`] operations, [`MAX_WRITE`] bytes per write,
//! [`MAX_SLOTS`] streams held by the peer, and the runtime is driven in steps of
//! [`YIELDS_PER_STEP`] yields with the clock moved only by the script, never waiting on the
//! session. One input runs in a few milliseconds.
//!
//! Checked besides panics (libFuzzer aborts on any panic, including one in a spawned task):
//! - with the canonical CLIENT_SETUP, the session answers exactly the canonical SERVER_SETUP;
//! - after the peer closes the connection and everything is dropped, every task the session
//!   spawned ends within [`TEARDOWN`] of virtual time (no leak, no livelock).
#![no_main]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use libfuzzer_sys::fuzz_target;
use moq_transfork::message::{
    Announce, AnnouncePlease, BiStream, Fetch, FrameHeader, GroupDrop, GroupHeader, Info,
    InfoRequest, Subscribe, SubscribeUpdate, UniStream,
};
use moq_transfork::transport::memory::{self, Config};
use moq_transfork::transport::{Connection, RecvStream, SendStream};
use moq_transfork::{
    Encode, Error, GroupOrder, GroupProducer, Path, Router, Session, SessionOptions, Track,
    TrackProducer,
};
use tokio::task::JoinHandle;

/// CLIENT_SETUP offering 0xff0bad02, after the session stream type (spec §4).
const CLIENT_SETUP: &[u8] = &[
    0x00, 0x01, 0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x02, 0x00,
];
/// SERVER_SETUP selecting 0xff0bad02 (spec §4).
const SERVER_SETUP: &[u8] = &[0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x02, 0x00];

/// Operations per input.
const MAX_OPS: usize = 64;
/// Bytes per raw write.
const MAX_WRITE: usize = 256;
/// Streams the peer holds at once; more are dropped as soon as they are opened or accepted.
const MAX_SLOTS: usize = 24;
/// Server-side helper tasks (subscriptions, announcements, requests) at once.
const MAX_HELPERS: usize = 16;
/// Yields per step: each lets every ready task of the runtime run about once.
const YIELDS_PER_STEP: usize = 8;
/// Steps a write, open or read may take before it is abandoned (dropped).
const OP_STEPS: usize = 4;
/// Virtual time the session gets to settle after the script, as (time, tick) phases: fine
/// ticks while the session's short timers run (linger, expiry, report flush, grace), then
/// coarse ones past the final flush (2 s) and the SETUP timeout (10 s), so a session that never
/// completed SETUP ends too.
const FINAL_TIME: [(Duration, Duration); 2] = [
    (Duration::from_millis(500), Duration::from_millis(50)),
    (Duration::from_millis(11_500), Duration::from_millis(500)),
];
/// The tick of the teardown.
const FINAL_TICK: Duration = Duration::from_millis(50);
/// Virtual time every task gets to end after the connection is closed, in steps of
/// [`FINAL_TICK`]. Covers the longest timer a task may be waiting on (the 2 s final flush).
const TEARDOWN: Duration = Duration::from_secs(5);

/// Paths the script picks from: the published track, nested paths, an unknown one, the root.
fn pick_path(n: u8) -> Path {
    match n % 5 {
        0 => Path::from_iter(["a"]),
        1 => Path::from_iter(["a", "b"]),
        2 => Path::from_iter(["missing"]),
        3 => Path::new(),
        _ => Path::from_iter(["b"]),
    }
}

/// Reads the script.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// A value that is small most of the time and occasionally anything a varint holds.
    fn value(&mut self) -> u64 {
        let tag = self.u8();
        match tag >> 6 {
            0..=1 => u64::from(tag & 0x7f),
            2 => u64::from(self.u16()),
            _ => {
                let mut b = [0u8; 8];
                for byte in &mut b {
                    *byte = self.u8();
                }
                u64::from_le_bytes(b) & ((1 << 62) - 1)
            }
        }
    }

    fn bytes(&mut self) -> Bytes {
        let len = (self.u8() as usize % (MAX_WRITE + 1)).min(self.data.len());
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        Bytes::copy_from_slice(head)
    }

    fn order(&mut self) -> GroupOrder {
        if self.u8() & 1 == 0 {
            GroupOrder::Descending
        } else {
            GroupOrder::Ascending
        }
    }

    fn maybe(&mut self) -> Option<u64> {
        match self.u8() & 1 {
            0 => None,
            // `Some(n)` goes on the wire as `n + 1`.
            _ => Some(self.value().min((1 << 62) - 2)),
        }
    }
}

/// One move of the script. Stream indices are taken modulo the streams held.
#[derive(Debug)]
enum Op {
    OpenBi(Bytes),
    OpenUni(Bytes),
    Write(u8, Bytes),
    Finish(u8),
    Reset(u8, u32),
    Stop(u8, u32),
    Drop(u8),
    Advance(Duration),
    Read,
    /// Requests as a well-behaved peer sends them.
    Request(Bytes),
    /// A well-formed message on an existing stream (replies to the session's requests).
    Message(u8, Bytes),
    /// A group stream: header, then frames.
    Group(Bytes),
    Server(ServerOp),
}

#[derive(Debug)]
enum ServerOp {
    Subscribe(Path),
    Unsubscribe(u8),
    Announced(Path),
    Info(Path),
    Fetch(Path, u64, u64),
    AppendGroup(u8),
    WriteFrame(Bytes),
    FinishGroup,
    CloseTrack,
    CloseSession(u32),
}

fn encode(msgs: &[&dyn Fn(&mut BytesMut)]) -> Bytes {
    let mut buf = BytesMut::new();
    for msg in msgs {
        msg(&mut buf);
    }
    buf.freeze()
}

fn frames(input: &mut Input<'_>, buf: &mut BytesMut) {
    for _ in 0..input.u8() % 4 {
        let payload = input.bytes();
        // Mostly the right size, sometimes a lie.
        let size = match input.u8() % 8 {
            0 => input.value(),
            _ => payload.len() as u64,
        };
        FrameHeader { size }.encode(buf);
        buf.extend_from_slice(&payload);
    }
}

fn request(input: &mut Input<'_>) -> Bytes {
    let path = pick_path(input.u8());
    match input.u8() % 4 {
        0 => {
            let msg = Subscribe {
                id: input.value(),
                path,
                priority: input.u8() as i8,
                group_order: input.order(),
                group_expires: Duration::from_millis(input.value() % 100_000),
                group_min: input.maybe(),
                group_max: input.maybe(),
            };
            encode(&[&|b| BiStream::Subscribe.encode(b), &|b| msg.encode(b)])
        }
        1 => {
            let msg = Fetch {
                path,
                priority: input.u8() as i8,
                group: input.value(),
                offset: input.value(),
            };
            encode(&[&|b| BiStream::Fetch.encode(b), &|b| msg.encode(b)])
        }
        2 => {
            let msg = InfoRequest { path };
            encode(&[&|b| BiStream::Info.encode(b), &|b| msg.encode(b)])
        }
        _ => {
            let msg = AnnouncePlease { prefix: path };
            encode(&[&|b| BiStream::Announce.encode(b), &|b| msg.encode(b)])
        }
    }
}

fn message(input: &mut Input<'_>) -> Bytes {
    let mut buf = BytesMut::new();
    match input.u8() % 6 {
        0 => Info {
            priority: input.u8() as i8,
            group_order: input.order(),
            group_expires: Duration::from_millis(input.value() % 100_000),
            group_latest: input.value(),
        }
        .encode(&mut buf),
        1 => GroupDrop {
            sequence: input.value(),
            count: input.value(),
            code: input.value() as u32,
        }
        .encode(&mut buf),
        2 => Announce::Active {
            suffix: pick_path(input.u8()),
        }
        .encode(&mut buf),
        3 => Announce::Ended {
            suffix: pick_path(input.u8()),
        }
        .encode(&mut buf),
        4 => SubscribeUpdate {
            priority: input.value(),
            group_order: input.order(),
            group_expires: Duration::from_millis(input.value() % 100_000),
            group_min: input.maybe(),
            group_max: input.maybe(),
        }
        .encode(&mut buf),
        _ => frames(input, &mut buf),
    }
    buf.freeze()
}

fn group(input: &mut Input<'_>) -> Bytes {
    let mut buf = BytesMut::new();
    UniStream::Group.encode(&mut buf);
    GroupHeader {
        subscribe: input.value(),
        sequence: input.value(),
    }
    .encode(&mut buf);
    frames(input, &mut buf);
    buf.freeze()
}

fn next_op(input: &mut Input<'_>) -> Op {
    match input.u8() % 16 {
        0 => Op::OpenBi(input.bytes()),
        1 => Op::OpenUni(input.bytes()),
        2 => Op::Write(input.u8(), input.bytes()),
        3 => Op::Finish(input.u8()),
        4 => Op::Reset(input.u8(), input.value() as u32),
        5 => Op::Stop(input.u8(), input.value() as u32),
        6 => Op::Drop(input.u8()),
        7 => {
            let n = input.u8();
            let ms = if n < 200 {
                u64::from(n)
            } else {
                u64::from(n - 199) * 250
            };
            Op::Advance(Duration::from_millis(ms))
        }
        8 | 9 => Op::Read,
        10 => Op::Request(request(input)),
        11 => Op::Message(input.u8(), message(input)),
        12 => Op::Group(group(input)),
        _ => Op::Server(match input.u8() % 10 {
            0 => ServerOp::Subscribe(pick_path(input.u8())),
            1 => ServerOp::Unsubscribe(input.u8()),
            2 => ServerOp::Announced(pick_path(input.u8())),
            3 => ServerOp::Info(pick_path(input.u8())),
            4 => ServerOp::Fetch(pick_path(input.u8()), input.value(), input.value()),
            5 => ServerOp::AppendGroup(input.u8() % 4),
            6 => ServerOp::WriteFrame(input.bytes()),
            7 => ServerOp::FinishGroup,
            8 => ServerOp::CloseTrack,
            _ => ServerOp::CloseSession(input.value() as u32),
        }),
    }
}

/// Lets every ready task run a few times. The clock does not move.
async fn step() {
    for _ in 0..YIELDS_PER_STEP {
        tokio::task::yield_now().await;
    }
}

/// Moves the paused clock by `by`, in ticks of at most `tick`, letting tasks run after each.
async fn advance(by: Duration, tick: Duration) {
    let mut left = by;
    while !left.is_zero() {
        let d = left.min(tick);
        tokio::time::advance(d).await;
        step().await;
        left -= d;
    }
}

/// Polls `fut` for at most [`OP_STEPS`] steps; `None` (and `fut` dropped) if it is not done.
/// Never waits on the session, so a session that stalls cannot stall the script.
async fn bounded<F: Future>(fut: F) -> Option<F::Output> {
    tokio::pin!(fut);
    for _ in 0..OP_STEPS {
        if let Some(out) = (&mut fut).now_or_never() {
            return Some(out);
        }
        step().await;
    }
    fut.now_or_never()
}

/// A stream held by the peer.
#[derive(Default)]
struct Slot {
    send: Option<SendStream>,
    recv: Option<RecvStream>,
}

/// The server side: the session once SETUP is done, and what the script made it do.
struct Server {
    accept: Option<JoinHandle<Result<Session, Error>>>,
    session: Option<Session>,
    producer: Option<TrackProducer>,
    open: Option<GroupProducer>,
    /// Subscriptions, announcements, INFO and FETCH requests, each read by a task.
    helpers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Picks up the session once `accept` is done; publishes the track.
    fn poll_accept(&mut self) {
        let Some(accept) = self.accept.as_mut() else {
            return;
        };
        let Some(res) = accept.now_or_never() else {
            return;
        };
        self.accept = None;
        // SETUP may fail (the script did not send a valid one); that must not panic.
        if let Ok(Ok(session)) = res {
            self.session = Some(session);
        }
    }

    fn helper(&mut self, fut: impl Future<Output = ()> + Send + 'static) {
        self.helpers.retain(|h| !h.is_finished());
        if self.helpers.len() < MAX_HELPERS {
            self.helpers.push(tokio::spawn(fut));
        }
    }

    fn run(&mut self, op: ServerOp) {
        match op {
            ServerOp::AppendGroup(frames) => {
                if let Some(producer) = &self.producer {
                    if let Ok(mut group) = producer.append_group() {
                        for i in 0..frames {
                            group.write_frame(Bytes::from(vec![i; 3]));
                        }
                        // The previous open group is finished by being dropped.
                        self.open = Some(group);
                    }
                }
                return;
            }
            ServerOp::WriteFrame(payload) => {
                if let Some(group) = &mut self.open {
                    group.write_frame(payload);
                }
                return;
            }
            ServerOp::FinishGroup => {
                if let Some(group) = self.open.take() {
                    group.finish();
                }
                return;
            }
            ServerOp::CloseTrack => {
                self.open = None;
                if let Some(producer) = self.producer.take() {
                    producer.close(Error::Cancel);
                }
                return;
            }
            ServerOp::Unsubscribe(i) => {
                if !self.helpers.is_empty() {
                    let i = i as usize % self.helpers.len();
                    self.helpers.swap_remove(i).abort();
                }
                return;
            }
            _ => {}
        }
        let Some(session) = self.session.clone() else {
            return;
        };
        match op {
            ServerOp::Subscribe(path) => {
                let mut track = session.subscribe(Track::new(path));
                self.helper(async move {
                    while let Ok(Some(mut group)) = track.next_group().await {
                        while let Ok(Some(_)) = group.read_frame().await {}
                    }
                });
            }
            ServerOp::Announced(prefix) => {
                let mut announced = session.announced(prefix);
                self.helper(async move { while announced.next().await.is_some() {} });
            }
            ServerOp::Info(path) => self.helper(async move {
                let _ = session.info(path).await;
            }),
            ServerOp::Fetch(path, group, offset) => {
                if let Ok(mut group) = session.fetch(path, 0, group, offset) {
                    self.helper(async move { while let Ok(Some(_)) = group.read_frame().await {} });
                }
            }
            ServerOp::CloseSession(code) => session.close(Error::from_code(code)),
            _ => unreachable!(),
        }
    }
}

/// The peer: the raw connection, the streams it holds, and what it read.
struct Peer {
    conn: Connection,
    slots: Vec<Slot>,
}

impl Peer {
    fn slot(&mut self, k: u8) -> Option<&mut Slot> {
        let len = self.slots.len();
        if len == 0 {
            None
        } else {
            self.slots.get_mut(k as usize % len)
        }
    }

    fn hold(&mut self, slot: Slot) {
        if self.slots.len() < MAX_SLOTS {
            self.slots.push(slot);
        }
    }

    async fn open_bi(&mut self, bytes: Bytes) {
        if let Some(Ok((mut send, recv))) = bounded(self.conn.open_bi()).await {
            let _ = bounded(send.write_chunk(bytes)).await;
            self.hold(Slot {
                send: Some(send),
                recv: Some(recv),
            });
        }
    }

    async fn open_uni(&mut self, bytes: Bytes) {
        if let Some(Ok(mut send)) = bounded(self.conn.open_uni()).await {
            let _ = bounded(send.write_chunk(bytes)).await;
            self.hold(Slot {
                send: Some(send),
                recv: None,
            });
        }
    }

    async fn write(&mut self, k: u8, bytes: Bytes) {
        if let Some(send) = self.slot(k).and_then(|s| s.send.as_mut()) {
            let _ = bounded(send.write_chunk(bytes)).await;
        }
    }

    /// Accepts the streams the session opened and reads whatever is available on all of them.
    fn read(&mut self) {
        for _ in 0..MAX_SLOTS {
            match self.conn.accept_bi().now_or_never() {
                Some(Ok((send, recv))) => self.hold(Slot {
                    send: Some(send),
                    recv: Some(recv),
                }),
                _ => break,
            }
        }
        for _ in 0..MAX_SLOTS {
            match self.conn.accept_uni().now_or_never() {
                Some(Ok(recv)) => self.hold(Slot {
                    send: None,
                    recv: Some(recv),
                }),
                _ => break,
            }
        }
        for slot in &mut self.slots {
            let Some(recv) = slot.recv.as_mut() else {
                continue;
            };
            // Bounded: the stream window bounds what is buffered.
            for _ in 0..64 {
                match recv.read_chunk(usize::MAX).now_or_never() {
                    Some(Ok(Some(_))) => {}
                    Some(Ok(None) | Err(_)) => {
                        slot.recv = None;
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    async fn run(&mut self, op: Op, server: &mut Server) {
        match op {
            Op::OpenBi(bytes) | Op::Request(bytes) => self.open_bi(bytes).await,
            Op::OpenUni(bytes) | Op::Group(bytes) => self.open_uni(bytes).await,
            Op::Write(k, bytes) | Op::Message(k, bytes) => self.write(k, bytes).await,
            Op::Finish(k) => {
                if let Some(send) = self.slot(k).and_then(|s| s.send.as_mut()) {
                    let _ = send.finish();
                }
            }
            Op::Reset(k, code) => {
                if let Some(send) = self.slot(k).and_then(|s| s.send.as_mut()) {
                    send.reset(code);
                }
            }
            Op::Stop(k, code) => {
                if let Some(recv) = self.slot(k).and_then(|s| s.recv.as_mut()) {
                    recv.stop(code);
                }
            }
            Op::Drop(k) => {
                if let Some(slot) = self.slot(k) {
                    // Drop the halves one at a time: send first, then receive.
                    if slot.send.take().is_none() {
                        slot.recv = None;
                    }
                }
            }
            Op::Advance(by) => advance(by, Duration::from_millis(5)).await,
            Op::Read => self.read(),
            Op::Server(op) => server.run(op),
        }
        step().await;
        server.poll_accept();
    }
}

fn options(input: &mut Input<'_>) -> (Config, SessionOptions, Duration) {
    let knobs = input.u8();
    let config = Config {
        stream_window: [1 << 20, 4096, 64, 7][(knobs & 3) as usize],
        max_streams: [256, 4, 2, 1][((knobs >> 2) & 3) as usize],
    };
    let router: Arc<dyn Router> = Arc::new(|_: &Track| Err(Error::NotFound));
    let options = SessionOptions {
        router: Some(router),
        max_inflight_groups: [8, 1][((knobs >> 4) & 1) as usize],
        max_frame_size: [64 << 20, 16][((knobs >> 5) & 1) as usize],
        max_group_size: [64 << 20, 200][((knobs >> 5) & 1) as usize],
        linger: [Duration::ZERO, Duration::from_millis(50)][((knobs >> 6) & 1) as usize],
        ..SessionOptions::default()
    };
    let expires = [Duration::ZERO, Duration::from_millis(100)][(knobs >> 7) as usize];
    (config, options, expires)
}

async fn run(data: &[u8]) {
    let mut input = Input { data };
    let setup = input.u8() & 7 != 0;
    let (config, options, expires) = options(&mut input);

    let (raw, theirs) = memory::pair_with(config);
    let (producer, consumer) = Track::new(Path::from_iter(["a"]))
        .with_group_expires(expires)
        .produce();
    for g in 0..3u8 {
        let mut group = producer.append_group().expect("a group");
        group.write_frame(Bytes::from(vec![g; 5]));
        group.write_frame(Bytes::from_static(b"frame"));
        group.finish();
    }
    let mut open = producer.append_group().expect("a group");
    open.write_frame(Bytes::from_static(b"open"));

    // The track is published in the poll that completes SETUP, before the session's first
    // request can be served.
    let accept = tokio::spawn(async move {
        let session = Session::accept_with(theirs, options).await?;
        session.publish(consumer).expect("a fresh session");
        Ok(session)
    });
    let mut server = Server {
        accept: Some(accept),
        session: None,
        producer: Some(producer),
        open: Some(open),
        helpers: Vec::new(),
    };
    let mut peer = Peer {
        conn: raw,
        slots: Vec::new(),
    };

    if setup {
        let (mut send, mut recv) = peer.conn.open_bi().await.expect("credit for one stream");
        send.write_chunk(Bytes::from_static(CLIENT_SETUP))
            .await
            .expect("the setup fits any window");
        let mut got = Vec::new();
        while got.len() < SERVER_SETUP.len() {
            match bounded(recv.read_chunk(usize::MAX)).await {
                Some(Ok(Some(chunk))) => got.extend_from_slice(&chunk),
                other => panic!("no SERVER_SETUP: {other:?} after {got:?}"),
            }
        }
        assert_eq!(got, SERVER_SETUP);
        step().await;
        server.poll_accept();
        assert!(server.session.is_some(), "SETUP answered but not accepted");
        peer.hold(Slot {
            send: Some(send),
            recv: Some(recv),
        });
    }

    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = next_op(&mut input);
        peer.run(op, &mut server).await;
    }

    // Let the session settle, reading as it goes: in fine ticks first, then coarse ones.
    for (by, tick) in FINAL_TIME {
        let mut left = by;
        while !left.is_zero() {
            peer.read();
            advance(tick, tick).await;
            server.poll_accept();
            left = left.saturating_sub(tick);
        }
    }

    // Close the connection and drop everything: every task must end.
    peer.conn.close(0, "");
    drop(peer);
    let Server {
        accept,
        session,
        producer,
        open,
        helpers,
    } = server;
    drop((session, producer, open));
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut left = TEARDOWN;
    while metrics.num_alive_tasks() > 0 && !left.is_zero() {
        advance(FINAL_TICK, FINAL_TICK).await;
        left = left.saturating_sub(FINAL_TICK);
    }
    let alive = metrics.num_alive_tasks();
    let helpers = helpers.iter().filter(|h| !h.is_finished()).count();
    assert!(
        alive == 0,
        "{alive} tasks still alive {TEARDOWN:?} after the connection closed \
         (accept done: {}, helpers alive: {helpers})",
        accept.is_none_or(|a| a.is_finished()),
    );
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        tokio::time::pause();
        run(data).await;
    });
});
