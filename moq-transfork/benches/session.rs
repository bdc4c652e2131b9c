//! One subscriber's throughput over real loopback QUIC through a session pair: a publisher
//! session writes frames into a track, a subscriber session on another endpoint receives
//! them, over raw QUIC (`moqf`) and WebTransport (`https`). This covers the send path (group
//! streams, frame headers, quinn's writes), which the model benches do not.
//!
//! Both sessions and both endpoints run on one current-thread runtime, so the figure is what
//! one core does end to end: publisher, QUIC both ways, subscriber. The publisher stays at
//! most [`WINDOW`] frames ahead of the subscriber, so the track's cache stays small however
//! many iterations criterion asks for.
//!
//! Run with `cargo bench -p moq-transfork --bench session`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_main, Criterion, Throughput};
use moq_transfork::model::{GroupConsumer, GroupProducer, TrackConsumer, TrackProducer};
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig, ServerTls};
use moq_transfork::{Path, Session, Track};

/// The fan-out points' media of docs/performance.md: 8 KiB frames in 60-frame groups.
const FRAME_SIZE: usize = 8192;
const GROUP_FRAMES: u64 = 60;
/// The most frames the publisher writes ahead of what the subscriber has read.
const WINDOW: u64 = 32;
/// Every wait of one measurement is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A publisher and a subscriber session over loopback, with the track between them.
struct Pair {
    producer: TrackProducer,
    group: Option<GroupProducer>,
    track: TrackConsumer,
    reading: Option<GroupConsumer>,
    written: u64,
    read: u64,
    // Kept alive for the measurements.
    _sessions: (Session, Session),
    _endpoints: (Endpoint, Endpoint),
}

impl Pair {
    async fn new(scheme: &str) -> Self {
        let tls = ServerTls::self_signed(&["localhost".to_string()]).expect("certificate");
        let bind = |server| {
            Endpoint::bind(EndpointConfig {
                bind: "127.0.0.1:0".parse().expect("address"),
                server,
                client: ClientTls::disable_verify(),
            })
            .expect("bind")
        };
        let (server, client) = (bind(Some(tls)), bind(None));
        let port = server.local_addr().expect("address").port();
        let url = format!("{scheme}://localhost:{port}/")
            .parse()
            .expect("url");
        let accept = async {
            let incoming = server.accept().await.expect("incoming");
            Session::accept(incoming.accept().await.expect("accept"))
                .await
                .expect("session")
        };
        let connect = async {
            Session::connect(client.connect(&url).await.expect("connect"))
                .await
                .expect("session")
        };
        let (publisher, subscriber) =
            tokio::time::timeout(TIMEOUT, async { tokio::join!(connect, accept) })
                .await
                .expect("session pair timed out");

        let path = Path::from_iter(["bench", "session"]);
        let (producer, consumer) = Track::new(path.clone()).produce();
        publisher.publish(consumer).expect("publish");
        let track = subscriber.subscribe(Track::new(path));
        Self {
            producer,
            group: None,
            track,
            reading: None,
            written: 0,
            read: 0,
            _sessions: (publisher, subscriber),
            _endpoints: (client, server),
        }
    }

    /// Sends `frames` frames of `payload` through the pair; returns how long it took.
    async fn transfer(&mut self, frames: u64, payload: &Bytes) -> Duration {
        let start = Instant::now();
        let target = self.written + frames;
        tokio::time::timeout(TIMEOUT, async {
            while self.read < target {
                while self.written < target && self.written - self.read < WINDOW {
                    self.write(payload.clone());
                }
                self.read_one().await;
            }
        })
        .await
        .expect("transfer timed out");
        start.elapsed()
    }

    /// Writes a frame, in a new group every [`GROUP_FRAMES`] (which ends the previous one).
    fn write(&mut self, payload: Bytes) {
        if self.written % GROUP_FRAMES == 0 {
            self.group = Some(self.producer.append_group().expect("group"));
        }
        if let Some(group) = &mut self.group {
            group.write_frame(payload);
        }
        self.written += 1;
    }

    /// Reads the next frame, moving to the next group when one ends.
    async fn read_one(&mut self) {
        loop {
            if let Some(group) = &mut self.reading {
                if let Some(frame) = group.read_frame().await.expect("frame") {
                    black_box(frame);
                    self.read += 1;
                    return;
                }
            }
            let group = self.track.next_group().await.expect("group");
            self.reading = Some(group.expect("the track ended"));
        }
    }
}

fn session(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payload = Bytes::from(vec![0u8; FRAME_SIZE]);
    let mut group = c.benchmark_group("session over loopback");
    group.throughput(Throughput::Bytes(FRAME_SIZE as u64));
    for scheme in ["moqf", "https"] {
        let mut pair = runtime.block_on(Pair::new(scheme));
        group.bench_function(format!("{scheme}: 8 KiB frames to 1 subscriber"), |b| {
            b.iter_custom(|frames| runtime.block_on(pair.transfer(frames, &payload)))
        });
    }
    group.finish();
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod generated {
    criterion::criterion_group!(benches, super::session);
}
criterion_main!(generated::benches);
