//! The real `moq-relay` binary routing requests on loopback: a FETCH of a cold path costs the
//! publisher nothing, and a publisher that refuses the relay's first SUBSCRIBE (it announced
//! its path before registering the track) gets its subscribers promptly, even when its old
//! session died silently.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{next_frame, next_group, path, timeout, wait_announced, Publisher, Relay, SCHEMES};
use moq_transfork::{
    AnnouncedProducer, Error, Path, Session, SessionOptions, Track, TrackConsumer, TrackProducer,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// How many cold FETCHes one test sends (per transport).
const COLD_FETCHES: u64 = 300;
/// What the cold FETCHes may cost the relay in resident memory.
const MAX_RSS_GROWTH_KIB: u64 = 4 * 1024;

/// A publisher session offering several tracks through a router, which counts the requests
/// the relay sends it for each path.
struct Tracks {
    _session: Session,
    producers: HashMap<Path, TrackProducer>,
    routed: Arc<Mutex<HashMap<Path, u64>>>,
    _announced: AnnouncedProducer,
}

impl Tracks {
    async fn start(relay: &Relay, scheme: &str, paths: &[Path]) -> Self {
        let announced = AnnouncedProducer::new();
        let mut producers = HashMap::new();
        for path in paths {
            let (producer, _) = Track::new(path.clone()).produce();
            producers.insert(path.clone(), producer);
            announced.announce(path.clone());
        }
        let routed = Arc::new(Mutex::new(HashMap::new()));
        let router = {
            let (producers, routed) = (producers.clone(), routed.clone());
            move |track: &Track| {
                *routed
                    .lock()
                    .unwrap()
                    .entry(track.path.clone())
                    .or_default() += 1;
                producers
                    .get(&track.path)
                    .map(TrackProducer::subscribe)
                    .ok_or(Error::NotFound)
            }
        };
        let options = SessionOptions {
            announce: vec![announced.clone()],
            router: Some(Arc::new(router)),
            ..Default::default()
        };
        Self {
            _session: relay.session_with(scheme, options).await,
            producers,
            routed,
            _announced: announced,
        }
    }

    /// How many requests for `path` the relay sent.
    fn routed(&self, path: &Path) -> u64 {
        self.routed
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or_default()
    }

    /// Writes a one-frame group to `path`.
    fn write(&self, path: &Path, payload: String) {
        let mut group = self.producers[path].append_group().unwrap();
        group.write_frame(Bytes::from(payload));
    }
}

/// Reads groups of `track` until one whose first frame is `expected`.
async fn receive(track: &mut TrackConsumer, expected: &str) {
    timeout(expected, async {
        loop {
            let mut group = track.next_group().await.unwrap().expect("not the end");
            if group.read_frame().await.unwrap().as_deref() == Some(expected.as_bytes()) {
                return;
            }
        }
    })
    .await;
}

/// FETCHes of an announced path that nobody subscribes to through the relay are answered
/// NotFound, reach the publisher not at all, and cost the relay no memory, while a
/// subscriber of another path of the same publisher keeps receiving.
#[tokio::test]
async fn a_fetch_of_a_cold_path_is_not_found_and_reaches_no_publisher() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        let (cold, live, barrier) = (path(&["cold"]), path(&["live"]), path(&["barrier"]));
        let publisher = Tracks::start(
            &relay,
            scheme,
            &[cold.clone(), live.clone(), barrier.clone()],
        )
        .await;
        let viewer = relay.session(scheme).await;
        wait_announced(&viewer, &cold).await;
        let mut healthy = viewer.subscribe(Track::new(live.clone()));
        publisher.write(&live, "live 0".into());
        receive(&mut healthy, "live 0").await;

        let rss_before = relay.rss_kib().unwrap();
        for sequence in 0..COLD_FETCHES {
            let mut fetched = viewer.fetch(cold.clone(), 0, sequence, 0).unwrap();
            assert_eq!(
                timeout("the FETCH answer", fetched.read_frame()).await,
                Err(Error::NotFound),
                "{scheme}"
            );
            if sequence % 50 == 49 {
                let payload = format!("live {}", sequence / 50 + 1);
                publisher.write(&live, payload.clone());
                receive(&mut healthy, &payload).await;
            }
        }
        let rss_after = relay.rss_kib().unwrap();
        eprintln!(
            "{scheme}: {COLD_FETCHES} cold FETCHes: relay RSS {rss_before} KiB -> {rss_after} KiB"
        );

        // A new subscription opens the relay's next request to the publisher, after any
        // request the FETCHes could have caused.
        let mut last = viewer.subscribe(Track::new(barrier.clone()));
        publisher.write(&barrier, "barrier".into());
        receive(&mut last, "barrier").await;
        assert_eq!(publisher.routed(&barrier), 1, "{scheme}");
        assert_eq!(
            publisher.routed(&cold),
            0,
            "{scheme}: a FETCH reached the publisher"
        );
        assert_eq!(publisher.routed(&live), 1, "{scheme}");
        assert!(
            rss_after.saturating_sub(rss_before) < MAX_RSS_GROWTH_KIB,
            "{scheme}: relay RSS {rss_before} KiB -> {rss_after} KiB"
        );

        // The cold path is still routed for a subscriber, and then FETCH is served.
        let mut track = viewer.subscribe(Track::new(cold.clone()));
        publisher.write(&cold, "cold 0".into());
        let mut group = next_group("cold group", &mut track).await;
        assert_eq!(next_frame("cold frame", &mut group).await, "cold 0");
        let mut fetched = viewer.fetch(cold.clone(), 0, group.sequence(), 0).unwrap();
        assert_eq!(next_frame("fetched frame", &mut fetched).await, "cold 0");
        assert_eq!(publisher.routed(&cold), 1, "{scheme}");
    }
}

/// A publisher session whose track is announced before it is registered: the first
/// SUBSCRIBE is refused with NotFound, later ones are served. Each request is reported with
/// its number and time.
struct Refusing {
    _session: Session,
    producer: TrackProducer,
    _announced: AnnouncedProducer,
    called: mpsc::UnboundedReceiver<(u32, Instant)>,
}

impl Refusing {
    async fn start(relay: &Relay, scheme: &str, track: &Path) -> Self {
        let (producer, _) = Track::new(track.clone()).produce();
        let announced = AnnouncedProducer::new();
        announced.announce(track.clone());
        let (calls, called) = mpsc::unbounded_channel();
        let router = {
            let (producer, count) = (producer.clone(), AtomicU32::new(0));
            move |_: &Track| {
                let call = count.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = calls.send((call, Instant::now()));
                if call == 1 {
                    Err(Error::NotFound)
                } else {
                    Ok(producer.subscribe())
                }
            }
        };
        let options = SessionOptions {
            announce: vec![announced.clone()],
            router: Some(Arc::new(router)),
            ..Default::default()
        };
        Self {
            _session: relay.session_with(scheme, options).await,
            producer,
            _announced: announced,
            called,
        }
    }

    /// Waits for the refused SUBSCRIBE and the one after it; returns when each came.
    async fn refused_then_asked(&mut self) -> (Instant, Instant) {
        let (first, refused) = timeout("the first SUBSCRIBE", self.called.recv())
            .await
            .unwrap();
        assert_eq!(first, 1);
        let (second, asked) = timeout("the second SUBSCRIBE", self.called.recv())
            .await
            .unwrap();
        assert_eq!(second, 2);
        (refused, asked)
    }

    /// Writes group `sequence` with one frame.
    fn write(&self, sequence: u64, payload: &'static str) {
        let mut group = self.producer.create_group(sequence).unwrap();
        group.write_frame(Bytes::from_static(payload.as_bytes()));
    }
}

/// A UDP forwarder between one client and the relay. Dropping it cuts the client off
/// silently, like a publisher that moved or lost its network: the relay notices only at its
/// idle timeout.
struct Forwarder {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(relay: SocketAddr) -> Self {
        let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        back.connect(relay).await.unwrap();
        let addr = front.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut client, mut up, mut down) = (None, vec![0; 65536], vec![0; 65536]);
            loop {
                tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut up) => {
                        client = Some(from);
                        let _ = back.send(&up[..n]).await;
                    }
                    Ok(n) = back.recv(&mut down) => {
                        if let Some(client) = client {
                            let _ = front.send_to(&down[..n], client).await;
                        }
                    }
                }
            }
        });
        Self { addr, task }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A publisher that moves (here: a new session while the old one still serves) refuses the
/// relay's first SUBSCRIBE with NotFound, as a released moq-clock does when it announces
/// before registering its track. The relay asks it again shortly: the subscriber gets the
/// new session's groups within a second, and keeps them once the old session is gone.
#[tokio::test]
async fn a_publisher_that_refuses_the_first_subscribe_gets_its_subscribers_promptly() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        let track = path(&["moving"]);
        let subscriber = relay.session(scheme).await;
        let old = Publisher::start(&relay, scheme, &track).await;
        wait_announced(&subscriber, &track).await;
        let mut consumer = subscriber.subscribe(Track::new(track.clone()));
        let mut group = old.producer.create_group(5).unwrap();
        group.write_frame(Bytes::from_static(b"old"));
        drop(group);
        receive(&mut consumer, "old").await;

        let mut new = Refusing::start(&relay, scheme, &track).await;
        let (refused, asked_again) = new.refused_then_asked().await;
        new.write(0, "new 0");
        receive(&mut consumer, "new 0").await;
        let waited = refused.elapsed();
        eprintln!(
            "{scheme}: asked again {:?} after the refusal, first new frame after {waited:?}",
            asked_again - refused
        );
        assert!(
            waited < Duration::from_secs(1),
            "{scheme}: the subscriber waited {waited:?}"
        );

        // The old session goes: the subscriber stays with the new one.
        old.session.close(Error::Cancel);
        drop(old);
        new.write(1, "new 1");
        receive(&mut consumer, "new 1").await;
        assert!(
            new.called.try_recv().is_err(),
            "{scheme}: a third SUBSCRIBE"
        );
    }
}

/// The case as it happens: the publisher's old session dies silently (the relay
/// would notice only at its idle timeout), and its new session refuses the relay's first
/// SUBSCRIBE. The subscriber gets the new session's groups within a second, not after the
/// old session's idle timeout.
#[tokio::test]
async fn a_publisher_that_moves_silently_and_refuses_first_gets_its_subscribers_promptly() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        let track = path(&["moved"]);
        let subscriber = relay.session(scheme).await;

        // The old session reaches the relay through a forwarder.
        let forwarder = Forwarder::start(relay.addr).await;
        let (producer, _) = Track::new(track.clone()).produce();
        let announced = AnnouncedProducer::new();
        announced.announce(track.clone());
        let router = {
            let producer = producer.clone();
            move |_: &Track| Ok(producer.subscribe())
        };
        let options = SessionOptions {
            announce: vec![announced.clone()],
            router: Some(Arc::new(router)),
            ..Default::default()
        };
        let url = format!("{scheme}://localhost:{}/", forwarder.addr.port());
        let endpoint = common::client();
        let conn = timeout("connect", endpoint.connect(&url.parse().unwrap()))
            .await
            .unwrap();
        let _old = timeout("setup", Session::connect_with(conn, options))
            .await
            .unwrap();
        wait_announced(&subscriber, &track).await;
        let mut consumer = subscriber.subscribe(Track::new(track.clone()));
        producer
            .create_group(5)
            .unwrap()
            .write_frame(Bytes::from_static(b"old"));
        receive(&mut consumer, "old").await;

        // The old session goes silent; the new one announces and refuses at first.
        drop(forwarder);
        let mut new = Refusing::start(&relay, scheme, &track).await;
        let (refused, _) = new.refused_then_asked().await;
        new.write(0, "new 0");
        receive(&mut consumer, "new 0").await;
        let waited = refused.elapsed();
        eprintln!("{scheme}: old session silent; first new frame {waited:?} after the refusal");
        assert!(
            waited < Duration::from_secs(1),
            "{scheme}: the subscriber waited {waited:?}"
        );
        new.write(1, "new 1");
        receive(&mut consumer, "new 1").await;
    }
}
