//! The real `moq-relay` binary with `--metrics-bind`: exact `/metrics` values after a scripted
//! publish and subscribe, refusals by reason, and `/health` and `/ready` in each state a test
//! can produce.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::http::{get, sample};
use common::{next_frame, next_group, path, timeout, wait_announced, Publisher, Relay, TempDir};
use jsonwebtoken::Algorithm;
use moq_token::SigningKey;
use moq_transfork::Track;

const METRICS: &[&str] = &["--linger-ms", "200", "--metrics-bind", "127.0.0.1:0"];

/// The relay's `/metrics` text.
async fn scrape(relay: &Relay) -> String {
    let response = get(relay.metrics.expect("--metrics-bind"), "/metrics", &[]).await;
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"));
    response.text()
}

/// Scrapes until `series` reads `value` (the relay notices a closed session a moment later).
async fn until(relay: &Relay, series: &str, value: u64) {
    timeout(series, async {
        while sample(&scrape(relay).await, series) != Some(value) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Asserts every `(series, value)` of `expected` in `text`.
fn assert_samples(text: &str, expected: &[(&str, u64)]) {
    for &(series, value) in expected {
        assert_eq!(sample(text, series), Some(value), "{series} in\n{text}");
    }
}

#[tokio::test]
async fn exact_values_after_a_scripted_publish_and_subscribe() {
    let relay = Relay::start_with(METRICS).await;
    let text = scrape(&relay).await;
    assert_samples(
        &text,
        &[
            ("moq_relay_sessions_accepted_total", 0),
            ("moq_relay_sessions_open{transport=\"webtransport\"}", 0),
            ("moq_relay_bytes_sent_total", 0),
        ],
    );

    let name = path(&["demo", "clock"]);
    let publisher = Publisher::start(&relay, "https", &name).await;
    let subscriber = relay.session("moqf").await;
    wait_announced(&subscriber, &name).await;
    let mut track = subscriber.subscribe(Track::new(name.clone()));

    let mut group = publisher.producer.append_group().unwrap();
    group.write_frame(Bytes::from(vec![1u8; 1000]));
    group.write_frame(Bytes::from(vec![2u8; 500]));
    group.finish();
    let mut received = next_group("group 0", &mut track).await;
    assert_eq!(next_frame("frame 0", &mut received).await.len(), 1000);
    assert_eq!(next_frame("frame 1", &mut received).await.len(), 500);

    let first = scrape(&relay).await;
    assert_samples(
        &first,
        &[
            ("moq_relay_sessions_accepted_total", 2),
            ("moq_relay_sessions_open{transport=\"webtransport\"}", 1),
            ("moq_relay_sessions_open{transport=\"quic\"}", 1),
            ("moq_relay_sessions_refused_total{reason=\"limit\"}", 0),
            ("moq_relay_subscriptions_downstream", 1),
            ("moq_relay_subscriptions_upstream", 1),
            ("moq_relay_announced_paths{origin=\"local\"}", 1),
            ("moq_relay_announced_paths{origin=\"remote\"}", 0),
            ("moq_relay_groups_received_total", 1),
            ("moq_relay_frames_received_total", 2),
            ("moq_relay_bytes_received_total", 1500),
            ("moq_relay_groups_sent_total", 1),
            ("moq_relay_frames_sent_total", 2),
            ("moq_relay_bytes_sent_total", 1500),
            ("moq_relay_groups_dropped_total", 0),
            ("moq_relay_cache_bytes", 1500),
            ("moq_relay_cluster_peers_connected", 0),
        ],
    );

    // A second group: bytes out grow between the two scrapes by exactly its size.
    let mut group = publisher.producer.append_group().unwrap();
    group.write_frame(Bytes::from(vec![3u8; 3000]));
    group.finish();
    let mut received = next_group("group 1", &mut track).await;
    assert_eq!(next_frame("frame 2", &mut received).await.len(), 3000);
    let second = scrape(&relay).await;
    assert_samples(
        &second,
        &[
            ("moq_relay_groups_sent_total", 2),
            ("moq_relay_frames_sent_total", 3),
            ("moq_relay_bytes_sent_total", 4500),
            ("moq_relay_bytes_received_total", 4500),
        ],
    );

    // The subscriber leaves: its session and its subscription are no longer counted.
    drop((track, received, subscriber));
    until(&relay, "moq_relay_sessions_open{transport=\"quic\"}", 0).await;
    until(&relay, "moq_relay_subscriptions_downstream", 0).await;
    assert_samples(
        &scrape(&relay).await,
        &[
            ("moq_relay_sessions_open{transport=\"webtransport\"}", 1),
            ("moq_relay_sessions_accepted_total", 2),
        ],
    );
}

#[tokio::test]
async fn refusals_are_counted_by_reason() {
    // The session limit.
    let relay = Relay::start_with(&[METRICS, &["--max-sessions", "1"]].concat()).await;
    let _held = relay.session("moqf").await;
    let refused = timeout(
        "refused connect",
        common::client().connect(&relay.url("moqf")),
    )
    .await;
    assert!(refused.is_err(), "a connection past --max-sessions");
    let text = scrape(&relay).await;
    assert_samples(
        &text,
        &[
            ("moq_relay_sessions_refused_total{reason=\"limit\"}", 1),
            ("moq_relay_sessions_refused_total{reason=\"auth\"}", 0),
            ("moq_relay_sessions_accepted_total", 1),
        ],
    );

    // A token that does not verify, on each transport.
    let dir = TempDir::new("metrics-auth");
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let file = dir.path().join("k1.jwk");
    std::fs::write(&file, key.to_json()).unwrap();
    let secured =
        Relay::start_with(&[METRICS, &["--auth-key", file.to_str().unwrap()]].concat()).await;
    for scheme in common::SCHEMES {
        let mut url = secured.url(scheme);
        url.query_pairs_mut().append_pair("jwt", "not-a-token");
        let conn = timeout("connect", common::client().connect(&url)).await;
        if let Ok(conn) = conn {
            let setup = timeout("setup", moq_transfork::Session::connect(conn)).await;
            if let Ok(session) = setup {
                timeout("close", session.closed()).await;
            }
        }
    }
    until(
        &secured,
        "moq_relay_sessions_refused_total{reason=\"auth\"}",
        2,
    )
    .await;
    assert_samples(
        &scrape(&secured).await,
        &[("moq_relay_sessions_accepted_total", 0)],
    );
}

#[tokio::test]
async fn health_and_ready_on_a_listening_relay() {
    let relay = Relay::start_with(METRICS).await;
    let metrics = relay.metrics.unwrap();
    let health = get(metrics, "/health", &[]).await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let ready = get(metrics, "/ready", &[]).await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
    assert_eq!(get(metrics, "/nothing", &[]).await.status, 404);
}

#[tokio::test]
async fn not_ready_while_the_cluster_root_is_unreachable() {
    // A UDP socket that never answers: the root is unreachable.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let root = dead.local_addr().unwrap().to_string();
    let args = [METRICS, &["--cluster-root", &root, "--tls-disable-verify"]].concat();
    let relay = Relay::start_with(&args).await;
    let metrics = relay.metrics.unwrap();
    let ready = get(metrics, "/ready", &[]).await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (503, "cluster root not reached yet\n")
    );
    // Alive all the same, and serving its own clients.
    assert_eq!(get(metrics, "/health", &[]).await.status, 200);
    let _session = relay.session("moqf").await;
    assert_eq!(get(metrics, "/ready", &[]).await.status, 503);
}

#[tokio::test]
async fn ready_once_the_cluster_root_is_reached() {
    let root = Relay::start().await;
    let root_addr = format!("127.0.0.1:{}", root.addr.port());
    let args = [
        METRICS,
        &["--cluster-root", &root_addr, "--tls-disable-verify"],
    ]
    .concat();
    let member = Relay::start_with(&args).await;
    let metrics = member.metrics.unwrap();
    timeout("ready", async {
        while get(metrics, "/ready", &[]).await.status != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        sample(&scrape(&member).await, "moq_relay_cluster_redials_total"),
        Some(0)
    );
}

#[tokio::test]
async fn ready_turns_503_when_the_drain_starts() {
    let args = [METRICS, &["--drain-timeout", "10s"]].concat();
    let relay = Relay::start_with(&args).await;
    let metrics = relay.metrics.unwrap();
    assert_eq!(get(metrics, "/ready", &[]).await.status, 200);
    // A session keeps the drain (and so the metrics listener) going.
    let session = relay.session("moqf").await;
    let pid = relay.child.id().expect("relay running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    timeout("/ready to answer 503", async {
        while get(metrics, "/ready", &[]).await.status != 503 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Draining is not dead: the process still serves its sessions.
    assert_eq!(get(metrics, "/health", &[]).await.status, 200);
    drop(session);
}
