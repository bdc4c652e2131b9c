//! `moq-clock-demo` as a process against the released moq-relay 0.6.15 and moq-clock 0.5.17,
//! over both transports, and its errors when the relay or the track is missing.
//!
//! The released peers are built once by `scripts/install-reference-peers.sh` into
//! `$MOQ_REF_DIR/bin` (default `~/.cache/moq-ref/bin`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{Announced, Session};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const SCHEMES: [&str; 2] = ["https", "moqf"];

/// Every wait is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(10);

async fn timeout<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn our_clock() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_moq-clock-demo"))
}

fn reference_binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("MOQ_REF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/moq-ref")
        });
    let bin = dir.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `bash scripts/install-reference-peers.sh` first",
        bin.display()
    );
    bin
}

/// Stderr is shown only when RUST_LOG is set.
fn stderr() -> Stdio {
    if std::env::var_os("RUST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// A clock process with its stdout as lines, killed when dropped.
struct Clock {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Clock {
    fn start(program: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", program.display()));
        let stdout = child.stdout.take().unwrap();
        Self {
            _child: child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next printed line, which must be a `YYYY-MM-DD HH:MM:SS` time.
    async fn next_time(&mut self) -> String {
        let line = timeout("a clock line", self.lines.next_line())
            .await
            .unwrap()
            .expect("the clock exited");
        let bytes = line.as_bytes();
        let ok = bytes.len() == 19
            && bytes.iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                10 => *b == b' ',
                13 | 16 => *b == b':',
                _ => b.is_ascii_digit(),
            });
        assert!(ok, "not a clock line: {line:?}");
        line
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// moq-relay 0.6.15 on 127.0.0.1 with a fresh certificate, killed when dropped.
struct ReferenceRelay {
    _child: Child,
    port: u16,
    _dir: TempDir,
}

impl ReferenceRelay {
    async fn start() -> Self {
        let port = free_udp_port();
        let dir = TempDir(
            std::env::temp_dir().join(format!("moq-clock-demo-test-{}-{port}", std::process::id())),
        );
        std::fs::create_dir_all(&dir.0).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let (cert_path, key_path) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let mut child = Command::new(reference_binary("moq-relay"))
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tls-cert")
            .arg(&cert_path)
            .arg("--tls-key")
            .arg(&key_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start moq-relay 0.6.15");
        // It logs `listening addr=…` once its socket is bound.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        timeout("moq-relay 0.6.15 to listen", async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("listening") {
                    return;
                }
            }
            panic!("moq-relay 0.6.15 exited");
        })
        .await;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _child: child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Waits until the relay announces `clock` to a library session.
    async fn wait_for_clock(&self, scheme: &str) {
        let endpoint = Endpoint::bind(EndpointConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            server: None,
            client: ClientTls::disable_verify(),
        })
        .unwrap();
        let conn = timeout(
            "connect",
            endpoint.connect(&self.url(scheme).parse().unwrap()),
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
}

/// A port that was free a moment ago (moq-relay 0.6.15 cannot report a port-0 bind).
fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

#[tokio::test]
async fn our_clock_through_reference_relay_to_reference_clock() {
    for scheme in SCHEMES {
        let relay = ReferenceRelay::start().await;
        let url = relay.url(scheme);
        let _publisher = Clock::start(our_clock(), &["--publish", "--tls-disable-verify", &url]);
        relay.wait_for_clock(scheme).await;
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
        relay.wait_for_clock(scheme).await;
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
