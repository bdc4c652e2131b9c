//! Helpers shared by the integration tests of the workspace's crates: bounded waits, scratch
//! directories, self-signed certificates, free ports, and child processes (the released
//! reference peers moq-relay 0.6.15 and moq-clock 0.5.17, and the workspace's own binaries)
//! whose output is read line by line.
//!
//! This crate is a dev-dependency only and is never published. It does not depend on
//! `moq-transfork`, so that crate can use it from its own tests.
//!
//! `CARGO_BIN_EXE_*` variables exist only in the tests of the package that owns a binary, so
//! the workspace's own binaries are passed in as paths by the callers.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// Every wait in a test is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The two URL schemes, one per transport.
pub const SCHEMES: [&str; 2] = ["https", "moqf"];

/// Awaits `fut`, failing the test if it takes longer than [`TIMEOUT`].
pub async fn timeout<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Installs a test tracing subscriber once (RUST_LOG controls it).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A released binary from the reference-peer cache: `$MOQ_REF_DIR/bin`, default
/// `~/.cache/moq-ref/bin`.
///
/// The first call in a test process that finds a peer missing runs
/// `scripts/install-reference-peers.sh`, which builds both peers into the cache (about ten
/// minutes on two cores, once per machine). The script holds a file lock, so test binaries
/// running in parallel build once and the others wait.
///
/// # Panics
///
/// When the build fails (the script has printed why: no toolchain, no registry, no C compiler).
pub fn reference_binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("MOQ_REF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/moq-ref")
        });
    let bin = dir.join("bin").join(name);
    if !bin.exists() {
        install_reference_peers(&dir);
    }
    assert!(
        bin.exists(),
        "{} is missing after scripts/install-reference-peers.sh ran",
        bin.display()
    );
    bin
}

/// Runs the install script once per test process; later callers wait for the first.
fn install_reference_peers(dir: &Path) {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-reference-peers.sh");
        eprintln!(
            "reference peers missing from {}: building them with {} (once per machine, about \
             ten minutes on two cores)",
            dir.display(),
            script.display()
        );
        let status = std::process::Command::new("bash")
            .arg(&script)
            .env("MOQ_REF_DIR", dir)
            .status()
            .map_err(|err| format!("cannot run bash {}: {err}", script.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({status}); its output says why",
                script.display()
            ))
        }
    });
    if let Err(err) = result {
        panic!("building the reference peers: {err}");
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago, for processes that must be told their
/// address up front (moq-relay 0.6.15 cannot bind port 0 and report it; cluster members must
/// know each other's address).
pub fn free_udp_port() -> u16 {
    let [port] = free_udp_ports();
    port
}

/// `N` distinct UDP ports of 127.0.0.1 that were free a moment ago. Every socket is held until
/// all are picked, so the OS cannot hand out one port twice.
pub fn free_udp_ports<const N: usize>() -> [u16; N] {
    let sockets = [(); N].map(|()| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"));
    sockets.map(|socket| socket.local_addr().expect("local address").port())
}

/// A scratch directory, unique within the test run, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<temp>/moq-test-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "moq-test-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The names a loopback test certificate is issued for.
pub const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1"];

/// A self-signed certificate for `names`, written as PEM to `<tag>.crt` and `<tag>.key` in
/// `dir`; returns (certificate path, key path).
pub fn write_certificate(dir: &Path, tag: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let names = names
        .iter()
        .map(|name| name.to_string())
        .collect::<Vec<_>>();
    let cert = rcgen::generate_simple_self_signed(names).expect("generate certificate");
    let (cert_path, key_path) = (
        dir.join(format!("{tag}.crt")),
        dir.join(format!("{tag}.key")),
    );
    std::fs::write(&cert_path, cert.cert.pem()).expect("write certificate");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

/// Where a child's stderr goes: to the test output only when RUST_LOG is set.
pub fn stderr() -> Stdio {
    if std::env::var_os("RUST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// A child process with its stdout as lines; killed when dropped.
#[derive(Debug)]
pub struct ChildLines {
    /// The process.
    pub child: Child,
    /// Its stdout, line by line.
    pub lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl ChildLines {
    /// The next line the child prints, failing the test after [`TIMEOUT`] or if it exits.
    pub async fn next_line(&mut self) -> String {
        timeout("a line of output", self.lines.next_line())
            .await
            .expect("read stdout")
            .expect("the process exited")
    }
}

/// Starts `program` with `args`, stdout piped, stderr as [`stderr`] says.
pub fn spawn_lines(program: &Path, args: &[&str]) -> ChildLines {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("start {}: {err}", program.display()));
    let stdout = child.stdout.take().expect("stdout");
    ChildLines {
        child,
        lines: BufReader::new(stdout).lines(),
    }
}

/// True for a `YYYY-MM-DD HH:MM:SS` line, as both clocks print.
pub fn is_clock_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() == 19
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b' ',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        })
}

/// The released moq-relay 0.6.15 on 127.0.0.1 with a fresh certificate; killed when dropped.
#[derive(Debug)]
pub struct ReferenceRelay {
    _child: Child,
    port: u16,
    _dir: TempDir,
}

impl ReferenceRelay {
    /// Starts it on a free port and waits until it logs that its socket is bound.
    pub async fn start() -> Self {
        let dir = TempDir::new("reference-relay");
        let (cert, key) = write_certificate(dir.path(), "relay", LOOPBACK_NAMES);
        let port = free_udp_port();
        let mut child = Command::new(reference_binary("moq-relay"))
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start moq-relay 0.6.15");
        // It logs `listening addr=…` once its socket is bound.
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        timeout("moq-relay 0.6.15 to listen", async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                if line.contains("listening") {
                    return;
                }
            }
            panic!("moq-relay 0.6.15 exited");
        })
        .await;
        // Keep draining its log so it can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _child: child,
            port,
            _dir: dir,
        }
    }

    /// The UDP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL for `scheme`, by address (moq-clock resolves `localhost` to ::1 first).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }
}
