//! `moq-clock-demo` as a process against the released moq-relay 0.6.15 and moq-clock 0.5.17,
//! over both transports, and its errors when the relay or the track is missing.
//!
//! The released peers are built once by `scripts/install-reference-peers.sh` into
//! `$MOQ_REF_DIR/bin` (default `~/.cache/moq-ref/bin`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use moq_test_support::{
    free_udp_port, is_clock_line, reference_binary, spawn_lines, timeout, ChildLines,
    ReferenceRelay, SCHEMES, TIMEOUT,
};
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{Announced, Session};
use tokio::process::Command;

fn our_clock() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_moq-clock-demo"))
}

/// A clock process with its stdout as lines, killed when dropped.
struct Clock(ChildLines);

impl Clock {
    fn start(program: &Path, args: &[&str]) -> Self {
        Self(spawn_lines(program, args))
    }

    /// The next printed line, which must be a `YYYY-MM-DD HH:MM:SS` time.
    async fn next_time(&mut self) -> String {
        let line = timeout("a clock line", self.0.lines.next_line())
            .await
            .unwrap()
            .expect("the clock exited");
        assert!(is_clock_line(&line), "not a clock line: {line:?}");
        line
    }
}

/// Waits until `relay` announces `clock` to a library session.
async fn wait_for_clock(relay: &ReferenceRelay, scheme: &str) {
    let endpoint = Endpoint::bind(EndpointConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        server: None,
        client: ClientTls::disable_verify(),
    })
    .unwrap();
    let conn = timeout(
        "connect",
        endpoint.connect(&relay.url(scheme).parse().unwrap()),
    )
    .await
    .unwrap();
    let session = timeout("setup", Session::connect(conn)).await.unwrap();
    let mut announced = session.announced(moq_transfork::Path::new());
    let clock = moq_transfork::Path::from_iter(["clock"]);
    timeout("the clock announced", async {
        while let Some(event) = announced.next().await {
            if event == Announced::Active(clock.clone()) {
                return;
            }
        }
        panic!("announcements ended");
    })
    .await;
}

#[tokio::test]
async fn our_clock_through_reference_relay_to_reference_clock() {
    for scheme in SCHEMES {
        let relay = ReferenceRelay::start().await;
        let url = relay.url(scheme);
        let _publisher = Clock::start(our_clock(), &["--publish", "--tls-disable-verify", &url]);
        wait_for_clock(&relay, scheme).await;
        let mut subscriber = Clock::start(
            &reference_binary("moq-clock"),
            &["--tls-disable-verify", &url],
        );
        subscriber.next_time().await;
        subscriber.next_time().await;
    }
}

#[tokio::test]
async fn reference_clock_through_reference_relay_to_our_clock() {
    for scheme in SCHEMES {
        let relay = ReferenceRelay::start().await;
        let url = relay.url(scheme);
        let reference = reference_binary("moq-clock");
        let _publisher = Clock::start(&reference, &["--publish", "--tls-disable-verify", &url]);
        wait_for_clock(&relay, scheme).await;
        // moq-relay 0.6.15 can lose an upstream SUBSCRIBE that arrives within a millisecond of
        // the clock's announcement (moq-transfork/tests/interop.rs). A released subscriber
        // printing a line proves the clock is being served before ours subscribes.
        let mut witness = Clock::start(&reference, &["--tls-disable-verify", &url]);
        witness.next_time().await;

        let mut ours = Clock::start(our_clock(), &["--tls-disable-verify", &url]);
        ours.next_time().await;
        ours.next_time().await;
    }
}

/// Runs our clock to completion and returns (success, stderr).
async fn run_our_clock(args: &[&str], limit: Duration) -> (bool, String) {
    let output = tokio::time::timeout(
        limit,
        Command::new(our_clock())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("moq-clock-demo should exit")
    .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn a_missing_track_is_a_clear_error() {
    let relay = ReferenceRelay::start().await;
    for scheme in SCHEMES {
        let url = relay.url(scheme);
        let (ok, stderr) = run_our_clock(
            &["--tls-disable-verify", "--path", "no-such-clock", &url],
            TIMEOUT,
        )
        .await;
        assert!(!ok, "{scheme}");
        assert!(
            stderr.contains("no-such-clock not found"),
            "{scheme}: {stderr}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_relay_is_a_clear_error() {
    // Nobody listens on this port; QUIC gives up after its 10 s idle timeout.
    let url = format!("moqf://127.0.0.1:{}/", free_udp_port());
    let (ok, stderr) = run_our_clock(&["--tls-disable-verify", &url], TIMEOUT * 2).await;
    assert!(!ok);
    assert!(stderr.contains("cannot reach"), "{stderr}");
}
