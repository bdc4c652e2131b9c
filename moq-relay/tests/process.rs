//! `moq-relay` as a user runs it: its banner, the HTTP fingerprint, real certificates with SNI,
//! clean shutdown on SIGTERM, and one clear error line for bad configurations.

mod common;

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use common::{
    next_frame, next_group, path, timeout, write_certificate, Publisher, Relay, TempDir, SCHEMES,
};
use moq_transfork::transport::ClientTls;
use moq_transfork::{Error, Session, Track};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs the relay with `args` and expects it to fail: returns its stderr.
async fn failing_relay(args: &[&str]) -> String {
    let output = timeout(
        "the relay to exit",
        tokio::process::Command::new(common::relay_binary())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(!output.status.success(), "the relay should fail: {args:?}");
    String::from_utf8(output.stderr).unwrap()
}

/// Runs the relay on 127.0.0.1 with `cert` and `key` and expects it to fail: returns its stderr.
async fn failing_relay_with_tls(cert: &std::path::Path, key: &std::path::Path) -> String {
    failing_relay(&[
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await
}

/// Expects exactly one line on stderr, an error naming `needle`.
fn assert_one_error_line(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(lines[0].contains("error"), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in: {stderr}");
}

#[tokio::test]
async fn banner_names_both_urls_and_the_fingerprint_served_over_http() {
    let relay = Relay::start_with(&["--dev"]).await;
    let port = relay.addr.port();
    let banner = relay.banner.join("\n");
    assert!(
        banner.contains(&format!("https://localhost:{port}/")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("moqf://localhost:{port}")),
        "{banner}"
    );
    assert_eq!(relay.fingerprint.len(), 64);

    // GET /fingerprint over plain HTTP on TCP at the same port, readable from any origin.
    let mut tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(b"GET /fingerprint HTTP/1.1\r\nHost: localhost\r\nOrigin: https://example.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    timeout("http response", tcp.read_to_string(&mut response))
        .await
        .unwrap();
    let lower = response.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{response}");
    assert!(
        lower.contains("access-control-allow-origin: *"),
        "{response}"
    );
    assert!(response.ends_with(&relay.fingerprint), "{response}");

    // A client pinning that fingerprint connects without any other trust.
    let hash: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&relay.fingerprint[i..i + 2], 16).unwrap())
        .collect();
    let client = common::client_with(ClientTls::with_fingerprints(vec![hash]));
    for scheme in SCHEMES {
        let conn = timeout("pinned connect", client.connect(&relay.url(scheme)))
            .await
            .unwrap();
        timeout("setup", Session::connect(conn)).await.unwrap();
    }
}

#[tokio::test]
async fn real_certificates_are_chosen_by_sni() {
    let dir = TempDir::new("sni");
    let (other_cert, other_key) = write_certificate(dir.path(), "other", &["other.test"]);
    let (local_cert, local_key) = write_certificate(dir.path(), "local", &["localhost"]);
    // The localhost certificate is first: a relay that ignored SNI would show the last one.
    let relay = Relay::start_with(&[
        "--tls-cert",
        local_cert.to_str().unwrap(),
        "--tls-key",
        local_key.to_str().unwrap(),
        "--tls-cert",
        other_cert.to_str().unwrap(),
        "--tls-key",
        other_key.to_str().unwrap(),
    ])
    .await;
    let client =
        common::client_with(ClientTls::with_roots(std::slice::from_ref(&local_cert)).unwrap());
    for scheme in SCHEMES {
        let conn = timeout("verified connect", client.connect(&relay.url(scheme)))
            .await
            .unwrap();
        timeout("setup", Session::connect(conn)).await.unwrap();
    }
    // A client that trusts only the other certificate is refused for localhost.
    let client = common::client_with(ClientTls::with_roots(&[other_cert]).unwrap());
    let refused = timeout("refused connect", client.connect(&relay.url("moqf"))).await;
    assert!(refused.is_err());
    // With real certificates the TCP endpoint is HTTPS, with the same choice by SNI.
    let https = ClientTls::with_roots(std::slice::from_ref(&local_cert))
        .unwrap()
        .client_config(b"http/1.1")
        .unwrap();
    let listed = common::http::get_tls(relay.addr, "localhost", https, "/announced/", &[]).await;
    assert_eq!(listed.status, 200);
}

#[tokio::test]
async fn sigterm_closes_sessions_and_exits_zero() {
    common::init_tracing();
    for signal in ["TERM", "INT"] {
        // No drain (tests/drain.rs): the sessions are closed at once.
        let mut relay = Relay::start_with(&["--drain-timeout", "0s"]).await;
        let session = relay.session("moqf").await;
        let webtransport = relay.session("https").await;
        relay.signal(signal);
        let status = tokio::time::timeout(Duration::from_secs(5), relay.child.wait())
            .await
            .expect("the relay exits within 5 s")
            .unwrap();
        assert!(status.success(), "SIG{signal}: {status}");
        for session in [session, webtransport] {
            let reason = timeout("session close", session.closed()).await;
            // Closed by the relay with code 0, not timed out.
            assert_eq!(reason.code(), 0, "SIG{signal}: {reason}");
        }
    }
}

#[tokio::test]
async fn a_port_in_use_is_one_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = failing_relay(&["--bind", &addr]).await;
    assert_one_error_line(&stderr, "address already in use");
}

#[tokio::test]
async fn a_missing_certificate_is_one_clear_error() {
    let dir = TempDir::new("missing");
    let (_, key) = write_certificate(dir.path(), "real", &["localhost"]);
    let missing = dir.path().join("nope.crt");
    let stderr = failing_relay_with_tls(&missing, &key).await;
    assert_one_error_line(&stderr, "nope.crt");
}

#[tokio::test]
async fn a_key_that_does_not_match_is_one_clear_error() {
    let dir = TempDir::new("mismatch");
    let (cert, _) = write_certificate(dir.path(), "a", &["localhost"]);
    let (_, other_key) = write_certificate(dir.path(), "b", &["localhost"]);
    let stderr = failing_relay_with_tls(&cert, &other_key).await;
    assert_one_error_line(&stderr, "does not match");
}

/// `--workers` sizes the runtime, as the banner says, and one worker serves a track end to
/// end; zero workers is refused.
#[tokio::test]
async fn workers_size_the_runtime() {
    let relay = Relay::start_with(&["--workers", "1"]).await;
    assert!(
        relay
            .banner
            .iter()
            .any(|line| line.trim() == "workers:      1"),
        "{:?}",
        relay.banner
    );
    let track = path(&["one-worker"]);
    let publisher = Publisher::start(&relay, "moqf", &track).await;
    let subscriber = relay.session("moqf").await;
    common::wait_announced(&subscriber, &track).await;
    let mut consumer = subscriber.subscribe(Track::new(track.clone()));
    let mut group = publisher.producer.create_group(0).unwrap();
    group.write_frame(Bytes::from_static(b"tick"));
    group.finish();
    let mut group = next_group("the group", &mut consumer).await;
    assert_eq!(
        next_frame("the frame", &mut group).await,
        Bytes::from_static(b"tick")
    );

    let stderr = failing_relay(&["--workers", "0"]).await;
    assert!(stderr.contains("--workers"), "{stderr}");
}

/// With a small relay-wide cache budget, the relay keeps only the latest groups of a track:
/// FETCH of an old group is refused while the latest is served.
#[tokio::test]
async fn the_cache_budget_bounds_what_the_relay_keeps() {
    const FRAME: usize = 40 * 1024;
    let relay = Relay::start_with(&["--cache-max-bytes", "65536", "--linger-ms", "200"]).await;
    let track = path(&["budget"]);
    let publisher = Publisher::start(&relay, "moqf", &track).await;
    let subscriber = relay.session("moqf").await;
    common::wait_announced(&subscriber, &track).await;
    let mut consumer = subscriber.subscribe(Track::new(track.clone()));
    for sequence in 0..4u64 {
        let mut group = publisher.producer.create_group(sequence).unwrap();
        group.write_frame(Bytes::from(vec![sequence as u8; FRAME]));
        group.finish();
        let mut received = next_group("group", &mut consumer).await;
        assert_eq!(received.sequence(), sequence);
        let frame = next_frame("frame", &mut received).await;
        assert_eq!(frame.len(), FRAME);
    }
    let mut old = subscriber.fetch(track.clone(), 0, 0, 0).unwrap();
    assert_eq!(
        timeout("evicted group", old.read_frame()).await,
        Err(Error::NotFound)
    );
    let mut latest = subscriber.fetch(track.clone(), 0, 3, 0).unwrap();
    let frame = next_frame("latest group", &mut latest).await;
    assert_eq!(frame.len(), FRAME);
}
