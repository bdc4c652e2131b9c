//! The processes a comparison measures: CPU time and memory from /proc, and starting our
//! relay or the released moq-relay 0.6.15 on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a relay may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Linux reports CPU time in clock ticks, 100 per second on every common configuration.
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time and resident memory of a process, from /proc.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProcessSample {
    pub(crate) at: Instant,
    cpu_ticks: u64,
    /// The run time of its live threads in nanoseconds, from the scheduler: far finer than
    /// the clock ticks, which are too coarse for the low fan-out points (0.1 s of CPU).
    cpu_ns: Option<u64>,
    pub(crate) rss_kib: u64,
}

impl ProcessSample {
    /// Samples process `pid`; `None` once it is gone.
    pub(crate) fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may contain spaces): utime is 14th, stime 15th.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cpu_ticks =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches(" kB")
            .parse()
            .ok()?;
        Some(Self {
            at: Instant::now(),
            cpu_ticks,
            cpu_ns: thread_run_time_ns(pid),
            rss_kib,
        })
    }

    /// CPU seconds (user and system) spent between `earlier` and this sample.
    pub(crate) fn cpu_secs_since(&self, earlier: &Self) -> f64 {
        match (self.cpu_ns, earlier.cpu_ns) {
            (Some(now), Some(then)) => now.saturating_sub(then) as f64 / 1e9,
            _ => self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / TICKS_PER_SEC,
        }
    }
}

/// The sum of the scheduler's run time of every thread of `pid` (the first field of
/// /proc/PID/task/TID/schedstat). Threads that exited are not counted; the relays' runtime
/// threads live as long as the process.
fn thread_run_time_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Which relay a run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RelayKind {
    /// This workspace's moq-relay.
    Ours,
    /// The released moq-relay 0.6.15.
    Reference,
}

impl RelayKind {
    /// The name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Reference => "0.6.15",
        }
    }
}

/// A relay process on 127.0.0.1, killed when dropped.
pub(crate) struct RelayProcess {
    child: Child,
    pid: u32,
    port: u16,
}

impl RelayProcess {
    /// Starts `binary` as `kind` with the PEM certificate `cert`/`key` and `extra` arguments
    /// on a free port, and waits until it has bound its socket.
    pub(crate) async fn start(
        kind: RelayKind,
        binary: &Path,
        cert: &Path,
        key: &Path,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let port = moq_test_support::free_udp_port();
        let mut command = Command::new(binary);
        command
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
        match kind {
            // All subscribers come from 127.0.0.1; the default cap per address is 64.
            RelayKind::Ours => command.args(["-q", "--max-sessions-per-ip", "100000"]),
            // It logs `listening addr=…` at info once its socket is bound.
            RelayKind::Reference => command.env("RUST_LOG", "info"),
        };
        command.args(extra);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let pid = child.id().context("relay pid")?;
        // Ours prints `listening on ADDR` on stdout; 0.6.15 logs `listening` on stderr.
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let mut out = BufReader::new(stdout.context("stdout")?).lines();
        let mut err = BufReader::new(stderr.context("stderr")?).lines();
        let listening = async {
            loop {
                let line = tokio::select! {
                    line = out.next_line() => line?,
                    line = err.next_line() => line?,
                };
                match line {
                    Some(line) if line.contains("listening") => return Ok(()),
                    Some(_) => {}
                    None => anyhow::bail!("{} exited before listening", binary.display()),
                }
            }
        };
        tokio::time::timeout(START_TIMEOUT, listening)
            .await
            .context("relay did not start listening")??;
        // Keep draining its output so it can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
        Ok(Self { child, pid, port })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Its raw-QUIC URL.
    pub(crate) fn url(&self) -> url::Url {
        format!("moqf://127.0.0.1:{}", self.port)
            .parse()
            .expect("a valid URL")
    }

    /// Kills it and waits for it to exit.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The released moq-relay 0.6.15, built into the reference-peer cache if missing (as the
/// interop tests do).
pub(crate) fn reference_relay() -> anyhow::Result<PathBuf> {
    // `reference_binary` panics with the install script's verdict when the build fails.
    std::panic::catch_unwind(|| moq_test_support::reference_binary("moq-relay"))
        .map_err(|_| anyhow::anyhow!("moq-relay 0.6.15 is not available"))
}
