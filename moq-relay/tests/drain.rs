//! Graceful drain of the real relay (docs/operations.md): on SIGTERM it refuses new
//! connections at once, keeps serving its sessions up to `--drain-timeout` (less when they
//! all leave), closes the rest with code 0 and exits 0; a second signal ends it at once. It
//! tells systemd when it is ready and when it stops.

mod ops;

use std::time::{Duration, Instant};

use moq_test_support::{timeout, TempDir};
use moq_transfork::transport::ClientTls;
use moq_transfork::{Error, Path};
use ops::{client, deliver, publish, subscribe, Process};

const BIND: [&str; 2] = ["--bind", "127.0.0.1:0"];

fn path() -> Path {
    Path::from_iter(["drain", "clock"])
}

/// Starts a relay with `--drain-timeout drain`.
async fn relay(drain: &str) -> Process {
    Process::start(&[BIND[0], BIND[1], "--drain-timeout", drain], &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_serves_sessions_refuses_new_ones_and_exits_zero_at_the_timeout() {
    let mut relay = relay("3s").await;
    let client = client(ClientTls::disable_verify());
    let publisher = relay.session(&client, "moqf").await;
    let producer = publish(&publisher, &path());
    let subscriber = relay.session(&client, "https").await;
    let mut track = subscribe(&subscriber, &path()).await;
    deliver(&producer, &mut track, "before").await;

    let skip = relay.lines();
    relay.signal("TERM");
    relay.wait_log(skip, "draining").await;
    let drain_started = Instant::now();

    // A new connection is refused by the relay, not left to the 10 s handshake timeout.
    for scheme in ["moqf", "https"] {
        let attempt = Instant::now();
        let refused = timeout("the refusal", client.connect(&relay.url(scheme))).await;
        let err = refused.expect_err("a connection during the drain must be refused");
        assert!(
            attempt.elapsed() < Duration::from_secs(2),
            "{scheme}: refused only after {:?}",
            attempt.elapsed()
        );
        assert!(err.to_string().contains("refuse"), "{scheme}: {err}");
    }

    // The existing subscriber keeps receiving while the drain lasts.
    for n in 0..3 {
        deliver(&producer, &mut track, &format!("during {n}")).await;
    }

    // At the timeout the remaining sessions are closed with code 0, and the relay exits 0.
    let status = relay.exit_within(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    let lasted = drain_started.elapsed();
    assert!(
        lasted >= Duration::from_millis(2500),
        "the drain ended after {lasted:?}, before its 3 s timeout, with sessions open"
    );
    for session in [publisher, subscriber] {
        let reason = timeout("the close", session.closed()).await;
        assert_eq!(reason.code(), 0, "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_ends_as_soon_as_the_last_session_leaves() {
    // Without sessions, at once.
    let mut idle = relay("30s").await;
    idle.signal("TERM");
    let status = idle.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}");

    // With sessions, when the last one leaves: far before the 30 s timeout.
    let mut relay = relay("30s").await;
    let client = client(ClientTls::disable_verify());
    let first = relay.session(&client, "moqf").await;
    let second = relay.session(&client, "https").await;
    let skip = relay.lines();
    relay.signal("TERM");
    relay.wait_log(skip, "draining").await;
    first.close(Error::Cancel);
    // Still draining: one session is left.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), relay.child.wait())
            .await
            .is_err(),
        "the relay exited with a session still open"
    );
    second.close(Error::Cancel);
    let status = relay.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}");
    relay.wait_log(skip, "no session left").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let mut relay = relay("30s").await;
    let client = client(ClientTls::disable_verify());
    let session = relay.session(&client, "moqf").await;
    let skip = relay.lines();
    relay.signal("TERM");
    relay.wait_log(skip, "draining").await;
    let second = Instant::now();
    relay.signal("INT");
    let status = relay.exit_within(Duration::from_secs(3)).await;
    assert!(status.success(), "{status}");
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "{:?}",
        second.elapsed()
    );
    relay.wait_log(skip, "second signal").await;
    drop(session);
}

/// Readiness through `$NOTIFY_SOCKET` (`Type=notify` in deploy/moq-relay.service): READY=1
/// once the listener is up, STOPPING=1 when the drain starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_is_told_ready_then_stopping() {
    let dir = TempDir::new("notify");
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let notify = socket_path.to_str().unwrap();
    let mut relay = Process::start(&BIND, &[("NOTIFY_SOCKET", notify)]).await;
    let mut buf = vec![0u8; 256];
    let n = timeout("READY=1", socket.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"READY=1\n");
    // Ready means connectable.
    let client = client(ClientTls::disable_verify());
    drop(relay.session(&client, "moqf").await);

    relay.signal("TERM");
    let n = timeout("STOPPING=1", socket.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    let status = relay.exit_within(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}
