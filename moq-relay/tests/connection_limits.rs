//! Connection limits of the real relay binary: attempts over the total or per-address session
//! limit are refused at once with QUIC CONNECTION_REFUSED while a healthy publisher and
//! subscriber keep exchanging groups; under (forced) handshake load, address validation with
//! a QUIC Retry still lets our clients and the released moq-clock 0.5.17 in; an idle session
//! and connection churn cost bounded memory.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    next_frame, next_group, path, reference_binary, spawn_lines, timeout, Publisher, Relay,
    SCHEMES, TIMEOUT,
};
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{Path, Session, Track, TrackConsumer};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A refusal must come back within this (it is one round trip on loopback).
const PROMPT: Duration = Duration::from_secs(2);

/// A client-only endpoint bound to `ip` (any address of 127.0.0.0/8 is loopback on Linux),
/// so that one test can be many client addresses.
fn client_at(ip: &str) -> Endpoint {
    Endpoint::bind(EndpointConfig {
        bind: format!("{ip}:0").parse().unwrap(),
        server: None,
        client: ClientTls::disable_verify(),
    })
    .unwrap()
}

/// A session from `endpoint`, or the error of the attempt.
async fn try_session(endpoint: &Endpoint, url: &url::Url) -> Result<Session, String> {
    let conn = endpoint.connect(url).await.map_err(|err| err.to_string())?;
    Session::connect(conn).await.map_err(|err| err.to_string())
}

/// Asserts that a session attempt is refused, promptly and with QUIC CONNECTION_REFUSED.
async fn assert_refused(endpoint: &Endpoint, url: &url::Url) {
    let started = Instant::now();
    let result = timeout("a refusal", try_session(endpoint, url)).await;
    let err = result.expect_err("the attempt over the limit was accepted");
    assert!(
        err.contains("refused to accept a new connection"),
        "not a CONNECTION_REFUSED: {err}"
    );
    assert!(
        started.elapsed() < PROMPT,
        "refused after {:?}",
        started.elapsed()
    );
}

/// Retries a session attempt until the relay has given the place back.
async fn session_when_admitted(endpoint: &Endpoint, url: &url::Url) -> Session {
    timeout("a place to be given back", async {
        loop {
            match try_session(endpoint, url).await {
                Ok(session) => return session,
                Err(err) if err.contains("refused") => tokio::task::yield_now().await,
                Err(err) => panic!("unexpected failure: {err}"),
            }
        }
    })
    .await
}

/// A publisher and a subscriber on one track (two sessions from 127.0.0.1), to show that
/// the relay keeps serving while other attempts are refused.
struct Healthy {
    publisher: Publisher,
    _subscriber: Session,
    track: TrackConsumer,
    sent: u64,
}

impl Healthy {
    async fn start(relay: &Relay, scheme: &str) -> Self {
        let track_path = path(&["healthy", scheme]);
        let publisher = Publisher::start(relay, scheme, &track_path).await;
        let subscriber = relay.session(scheme).await;
        common::wait_announced(&subscriber, &track_path).await;
        let track = subscriber.subscribe(Track::new(track_path));
        let mut healthy = Self {
            publisher,
            _subscriber: subscriber,
            track,
            sent: 0,
        };
        healthy.delivers().await;
        healthy
    }

    /// Publishes a new group and waits until the subscriber has its frame.
    async fn delivers(&mut self) {
        self.sent += 1;
        let payload = Bytes::from(format!("group {}", self.sent));
        let mut group = self.publisher.producer.append_group().unwrap();
        group.write_frame(payload.clone());
        loop {
            let mut group = next_group("a healthy group", &mut self.track).await;
            if next_frame("a healthy frame", &mut group).await == payload {
                return;
            }
        }
    }
}

#[tokio::test]
async fn per_address_limit_refuses_promptly_and_frees_on_close() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start_with(&["--linger-ms", "200", "--max-sessions-per-ip", "3"]).await;
        let url = relay.url(scheme);
        let mut healthy = Healthy::start(&relay, scheme).await;

        let crowd = client_at("127.0.0.2");
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(try_session(&crowd, &url).await.unwrap());
        }
        assert_refused(&crowd, &url).await;
        healthy.delivers().await;

        // Other addresses are not affected.
        let other = client_at("127.0.0.3");
        let _other = try_session(&other, &url).await.unwrap();

        // Closing a session gives its place back.
        held.pop().unwrap().close(moq_transfork::Error::Cancel);
        held.push(session_when_admitted(&crowd, &url).await);
        assert_refused(&crowd, &url).await;
        healthy.delivers().await;
    }
}

#[tokio::test]
async fn total_limit_refuses_floods_at_no_cost() {
    common::init_tracing();
    let scheme = "moqf";
    // The healthy pair holds two places.
    let relay = Relay::start_with(&["--linger-ms", "200", "--max-sessions", "4"]).await;
    let url = relay.url(scheme);
    let mut healthy = Healthy::start(&relay, scheme).await;
    let _a = try_session(&client_at("127.0.0.2"), &url).await.unwrap();
    let _b = try_session(&client_at("127.0.0.3"), &url).await.unwrap();

    let late = client_at("127.0.0.4");
    for scheme in SCHEMES {
        assert_refused(&late, &relay.url(scheme)).await;
    }
    healthy.delivers().await;

    // A flood of attempts over the limit holds nothing in the relay.
    let before = relay.rss_kib().unwrap();
    for _ in 0..200 {
        assert_refused(&late, &url).await;
    }
    healthy.delivers().await;
    let growth = relay.rss_kib().unwrap().saturating_sub(before);
    assert!(
        growth < 1024,
        "200 refused attempts grew the relay by {growth} KiB"
    );
}

/// A QUIC connection to `addr` from `ip` with `alpn` that completes the QUIC handshake and then
/// sends nothing: no WebTransport CONNECT (`h3`) or no CLIENT_SETUP (`moqf-02`). The client
/// keeps the connection alive, so only the relay can end it.
async fn stalled_connection(
    ip: &str,
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> quinn::Connection {
    let tls = ClientTls::disable_verify().client_config(alpn).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(1)));
    let mut config = quinn::ClientConfig::new(std::sync::Arc::new(crypto));
    config.transport_config(std::sync::Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client(format!("{ip}:0").parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let connecting = endpoint.connect(addr, "localhost").unwrap();
    timeout("a QUIC handshake", connecting).await.unwrap()
}

/// How long the relay gives a connection to finish the QUIC, WebTransport and SETUP handshakes.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn stalled_handshakes_are_closed_and_give_their_place_back() {
    common::init_tracing();
    let relay = Relay::start_with(&["--linger-ms", "200", "--max-sessions-per-ip", "2"]).await;
    let mut healthy = Healthy::start(&relay, "moqf").await;

    // Two connections that never start a session fill the address's places.
    let started = Instant::now();
    let stalled_wt = stalled_connection("127.0.2.1", relay.addr, b"h3").await;
    let stalled_moqf = stalled_connection("127.0.2.1", relay.addr, b"moqf-02").await;
    let crowd = client_at("127.0.2.1");
    assert_refused(&crowd, &relay.url("moqf")).await;
    healthy.delivers().await;

    // The relay closes both at its deadline, with an application close of its own.
    for (name, conn) in [("h3", &stalled_wt), ("moqf-02", &stalled_moqf)] {
        let reason = tokio::time::timeout(HANDSHAKE_DEADLINE * 2, conn.closed())
            .await
            .unwrap_or_else(|_| panic!("{name}: a stalled handshake was never closed"));
        let elapsed = started.elapsed();
        assert!(
            matches!(reason, quinn::ConnectionError::ApplicationClosed(_)),
            "{name}: not closed by the relay: {reason}"
        );
        assert!(
            elapsed >= HANDSHAKE_DEADLINE - Duration::from_secs(1),
            "{name}: closed after {elapsed:?}, before the deadline"
        );
        eprintln!("{name}: closed after {elapsed:?}: {reason}");
    }

    // Their places are free again, and the healthy pair never stopped.
    let _admitted = session_when_admitted(&crowd, &relay.url("moqf")).await;
    healthy.delivers().await;
}

/// A relay started with `args` whose log (at debug for the relay) goes to a file.
async fn relay_logging(args: &[&str], log: &std::path::Path) -> (tokio::process::Child, u16) {
    let mut child = tokio::process::Command::new(common::relay_binary())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info,moq_relay=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = timeout("the relay's banner", async {
        loop {
            let line = lines.next_line().await.unwrap().expect("relay exited");
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                return addr.parse::<std::net::SocketAddr>().unwrap().port();
            }
        }
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

#[tokio::test]
async fn retry_validates_addresses_and_clients_still_connect() {
    common::init_tracing();
    let dir = common::TempDir::new("retry");
    let log = dir.path().join("relay.log");
    // A threshold of 0 answers every unvalidated attempt with a Retry.
    let (_relay, port) = relay_logging(&["--retry-handshakes", "0"], &log).await;
    let retries = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("retry sent")
            .count()
    };

    // Our library, over both transports: publish and subscribe through the relay, each
    // session from an endpoint of its own (a returning endpoint presents the address
    // token of its earlier connection and is not asked again).
    for scheme in SCHEMES {
        let url: url::Url = format!("{scheme}://localhost:{port}/").parse().unwrap();
        let before = retries();
        let track_path = path(&["retry", scheme]);
        let (producer, consumer) = Track::new(track_path.clone()).produce();
        let publisher = try_session(&common::client(), &url).await.unwrap();
        publisher.publish(consumer).unwrap();
        let subscriber = try_session(&common::client(), &url).await.unwrap();
        common::wait_announced(&subscriber, &track_path).await;
        let mut track = subscriber.subscribe(Track::new(track_path));
        producer
            .append_group()
            .unwrap()
            .write_frame(Bytes::from_static(b"validated"));
        let mut group = next_group("a group", &mut track).await;
        assert_eq!(next_frame("a frame", &mut group).await, "validated");
        // Both sessions answered a Retry first (the log line is written before the Retry).
        assert!(retries() >= before + 2, "{scheme}: no Retry was sent");
    }

    // The released moq-clock 0.5.17, over both transports.
    let clock = reference_binary("moq-clock");
    for scheme in SCHEMES {
        let url = format!("{scheme}://127.0.0.1:{port}/");
        let before = retries();
        let _publisher = spawn_lines(&clock, &["--publish", "--tls-disable-verify", &url]);
        // A subscriber that comes before the announcement is told NotFound and exits.
        let watcher = try_session(&common::client(), &url.parse().unwrap())
            .await
            .unwrap();
        common::wait_announced(&watcher, &path(&["clock"])).await;
        let mut subscriber = spawn_lines(&clock, &["--tls-disable-verify", &url]);
        let line = subscriber.next_line().await;
        assert!(common::is_clock_line(&line), "{scheme}: {line:?}");
        assert!(retries() >= before + 2, "{scheme}: moq-clock got no Retry");
    }
}

/// What one idle session (SETUP done, nothing else) costs the relay, from `count` sessions.
async fn idle_cost_kib(relay: &Relay, scheme: &str, count: usize) -> f64 {
    let url = relay.url(scheme);
    let client = common::client();
    // Warm the relay up (first-use allocations, the allocator's first pages).
    let warm: Vec<Session> = open_sessions(&client, &url, 20).await;
    drop(warm);
    let before = relay.rss_kib().unwrap();
    let sessions = open_sessions(&client, &url, count).await;
    // An INFO round trip on each: the relay has finished setting every session up.
    for session in &sessions {
        let missing = Path::from_iter(["no", "such", "track"]);
        let answer = timeout("an INFO answer", session.info(missing)).await;
        assert!(answer.is_err(), "INFO of a missing track answered");
    }
    let after = relay.rss_kib().unwrap();
    after.saturating_sub(before) as f64 / count as f64
}

/// `count` sessions, opened one after another.
async fn open_sessions(client: &Endpoint, url: &url::Url, count: usize) -> Vec<Session> {
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        sessions.push(
            timeout("an idle session", try_session(client, url))
                .await
                .unwrap(),
        );
    }
    sessions
}

#[tokio::test]
async fn idle_session_costs_under_48_kib() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start_with(&["--max-sessions-per-ip", "1000"]).await;
        let cost = idle_cost_kib(&relay, scheme, 300).await;
        eprintln!("{scheme}: an idle session costs the relay {cost:.1} KiB");
        assert!(cost < 48.0, "{scheme}: an idle session costs {cost:.1} KiB");
    }
}

/// Connect, wait for the announcement, subscribe, take one frame, close: `cycles` times.
async fn churn(endpoint: Endpoint, url: url::Url, track_path: Path, cycles: usize) {
    for _ in 0..cycles {
        let session = timeout("a churn session", try_session(&endpoint, &url))
            .await
            .unwrap();
        common::wait_announced(&session, &track_path).await;
        let mut track = session.subscribe(Track::new(track_path.clone()));
        let mut group = next_group("a churn group", &mut track).await;
        next_frame("a churn frame", &mut group).await;
        session.close(moq_transfork::Error::Cancel);
    }
}

/// Runs `cycles` churn cycles spread over `workers` workers, each from its own address.
async fn churn_all(relay: &Relay, track_path: &Path, workers: usize, cycles: usize) {
    let url = relay.url("moqf");
    let tasks: Vec<_> = (0..workers)
        .map(|i| {
            let endpoint = client_at(&format!("127.0.1.{}", i + 1));
            let run = churn(endpoint, url.clone(), track_path.clone(), cycles / workers);
            tokio::spawn(run)
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_under_2_mib() {
    common::init_tracing();
    let relay = Relay::start().await;
    let mut healthy = Healthy::start(&relay, "moqf").await;
    let track_path = path(&["healthy", "moqf"]);

    // The baseline is taken after a short warm-up at the same concurrency: the first
    // connections pay one-time costs (code pages, the allocator's per-thread arenas).
    let cold = relay.rss_kib().unwrap();
    churn_all(&relay, &track_path, 10, 100).await;
    let before = relay.rss_kib().unwrap();
    let started = Instant::now();
    tokio::time::timeout(TIMEOUT * 6, churn_all(&relay, &track_path, 10, 2000))
        .await
        .expect("2 000 churn cycles took over 60 s");
    let after = relay.rss_kib().unwrap();
    eprintln!("2 000 churn cycles in {:?}", started.elapsed());
    healthy.delivers().await;

    // Settled: the closed sessions have drained and their memory is free again.
    let bound = before + 2048;
    let settled = timeout("the relay's memory to settle", async {
        loop {
            let now = relay.rss_kib().unwrap();
            if now < bound {
                return now;
            }
            // Each round trip through the relay paces the next look.
            healthy.delivers().await;
        }
    })
    .await;
    eprintln!(
        "relay RSS {cold} KiB cold, {before} KiB warm, {after} KiB after 2 000 churn cycles, \
         {settled} KiB settled"
    );
}
