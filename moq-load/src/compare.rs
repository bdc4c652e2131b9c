//! `moq-load compare`: the performance matrix of docs/performance.md (issue 11) in one
//! command, against our relay and moq-relay 0.6.15, with the plain-QUIC floor.
//!
//! Every measurement starts a fresh relay process and is repeated `--runs` times, the two
//! relays taking turns so both see the same machine. The relay's CPU comes from
//! /proc/PID/stat over the publishing window; its RSS is the peak of samples taken every
//! 100 ms. Progress goes to stderr, the markdown tables to stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::floor::{self, FloorArgs};
use crate::load::{self, LoadArgs, Outcome};
use crate::process::{reference_relay, ProcessSample, RelayKind, RelayProcess};
use crate::report::{print_churn, print_fan_out, print_high_rate, print_overload};
use crate::table::Spread;

/// The fan-out points' media: 8 KiB frames at 30 fps in 60-frame groups.
pub(crate) const FRAME_SIZE: usize = 8192;
pub(crate) const RATE: u32 = 30;
pub(crate) const GROUP_FRAMES: u32 = 60;
/// The high-rate point: 10 subscribers of 64 KiB frames.
pub(crate) const HIGH_RATE_SUBSCRIBERS: usize = 10;
pub(crate) const HIGH_RATE_FRAME: usize = 64 << 10;
/// Delivery below this ends the high-rate search, in percent.
pub(crate) const HIGH_RATE_DELIVERY: f64 = 99.0;
/// The most steps of one high-rate search.
const MAX_SEARCH_STEPS: u32 = 40;
/// Churn: workers that subscribe and leave, plus one publisher worker.
pub(crate) const CHURN_WORKERS: usize = 8;
/// How often the relay's RSS is sampled for its peak.
const RSS_PERIOD: Duration = Duration::from_millis(100);
/// The targets.
pub(crate) const CPU_TARGET: f64 = 0.6;
pub(crate) const HIGH_RATE_TARGET: f64 = 1.5;
pub(crate) const CHURN_TARGET: f64 = 1.5;
pub(crate) const OVERLOAD_RSS_MIB: f64 = 64.0;
pub(crate) const OVERLOAD_P99_MS: f64 = 500.0;

/// The flags of `compare`.
#[derive(clap::Args, Debug)]
pub(crate) struct CompareArgs {
    /// Our relay's binary, a release build (`cargo build --release -p moq-relay`); default:
    /// `moq-relay` next to this executable.
    #[arg(long, value_name = "PATH")]
    relay: Option<PathBuf>,
    /// An extra argument for our relay, repeatable: `--relay-arg=--congestion=cubic` measures
    /// a transport setting.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    relay_arg: Vec<String>,
    /// moq-relay 0.6.15; default: `$MOQ_REF_DIR/bin/moq-relay` (`~/.cache/moq-ref`), built by
    /// scripts/install-reference-peers.sh when missing, as the interop tests do.
    #[arg(long, value_name = "PATH")]
    reference: Option<PathBuf>,
    /// Runs of each point and relay; the tables show the median and the range.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Seconds of publishing per run of a fan-out, overload, churn or floor point.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    duration: u64,
    /// Seconds of publishing per step of the high-rate search.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    search_duration: u64,
    /// The fan-out points: subscribers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,100,200")]
    subscribers: Vec<usize>,
    /// The first rate of the high-rate search, in frames per second; it goes up from there by
    /// --search-step while delivery holds, else down until it holds.
    #[arg(long, default_value_t = 160)]
    search_start: u32,
    /// How much the search raises the rate per step, in frames per second.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    search_step: u32,
    /// The overload rate at the high-rate point, in frames per second.
    #[arg(long, default_value_t = 480)]
    overload_rate: u32,
    /// Only the fan-out points (and the floor): no high-rate search, overload or churn; for
    /// comparing a setting of our relay (--relay-arg) quickly.
    #[arg(long)]
    fan_out_only: bool,
    /// A few seconds in all, for CI: one 1-second run at 1 and 10 subscribers, one search
    /// step, and short overload, churn and floor runs. Proves the command works; its figures
    /// mean nothing.
    #[arg(long)]
    smoke: bool,
}

/// One measured run: the load's outcome and the measured process's peak RSS.
pub(crate) struct Run {
    pub(crate) outcome: Outcome,
    peak_rss_kib: u64,
}

impl Run {
    pub(crate) fn cpu_per_gb(&self) -> f64 {
        self.outcome.cpu_per_gb().unwrap_or(f64::NAN)
    }
    pub(crate) fn delivery(&self) -> f64 {
        self.outcome.delivery_pct()
    }
    pub(crate) fn p99(&self) -> f64 {
        self.outcome.latency_ms(0.99)
    }
    pub(crate) fn rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// Every run of one relay (or the floor) at one point.
#[derive(Default)]
pub(crate) struct Runs(pub(crate) Vec<Run>);

impl Runs {
    pub(crate) fn spread(&self, metric: fn(&Run) -> f64) -> Option<Spread> {
        Spread::of(self.0.iter().map(metric))
    }
}

/// What to start and how long to run.
struct Setup {
    binaries: [(RelayKind, PathBuf); 2],
    _dir: moq_test_support::TempDir,
    cert: PathBuf,
    key: PathBuf,
    /// Extra arguments for our relay.
    relay_args: Vec<String>,
    floor: PathBuf,
    runs: u32,
    duration: u64,
    search_duration: u64,
}

/// Runs the matrix and prints the tables.
pub(crate) async fn run(mut args: CompareArgs) -> anyhow::Result<()> {
    if args.smoke {
        args.runs = 1;
        args.duration = 1;
        args.search_duration = 1;
        args.subscribers = vec![1, 10];
        args.search_start = 60;
        args.overload_rate = 120;
    }
    let relay = match args.relay.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("moq-relay"),
    };
    anyhow::ensure!(
        relay.exists(),
        "{} is missing: build it with `cargo build --release -p moq-relay`, or pass --relay",
        relay.display()
    );
    let reference = match args.reference.clone() {
        Some(path) => path,
        None => reference_relay()?,
    };
    let dir = moq_test_support::TempDir::new("compare");
    let (cert, key) =
        moq_test_support::write_certificate(dir.path(), "relay", moq_test_support::LOOPBACK_NAMES);
    let setup = Setup {
        binaries: [(RelayKind::Ours, relay), (RelayKind::Reference, reference)],
        _dir: dir,
        cert,
        key,
        relay_args: args.relay_arg.clone(),
        floor: floor::server_command()?,
        runs: args.runs,
        duration: args.duration,
        search_duration: args.search_duration,
    };

    let fan_out = fan_out(&setup, &args.subscribers).await?;
    let command: Vec<String> = std::env::args().collect();
    if args.fan_out_only {
        println!("`{}`\n", command.join(" "));
        print_fan_out(&args.subscribers, &fan_out);
        return Ok(());
    }
    let search = high_rate(&setup, args.search_start, args.search_step, args.smoke).await?;
    let overload = at_high_rate(&setup, args.overload_rate).await?;
    let churn = churn(&setup).await?;

    println!("`{}`\n", command.join(" "));
    print_fan_out(&args.subscribers, &fan_out);
    print_high_rate(&search);
    print_overload(args.overload_rate, &overload);
    print_churn(&churn);
    Ok(())
}

/// Fan-out results of one point: ours, 0.6.15, the floor.
pub(crate) type Point = [Runs; 3];

async fn fan_out(setup: &Setup, points: &[usize]) -> anyhow::Result<Vec<Point>> {
    let mut results = Vec::new();
    for &subscribers in points {
        let mut point = Point::default();
        for run in 0..setup.runs {
            let args = load_args(subscribers, RATE, FRAME_SIZE, setup.duration);
            for (i, (kind, binary)) in setup.binaries.iter().enumerate() {
                let measured = measure_relay(setup, *kind, binary, &args).await?;
                progress(
                    &format!("{subscribers} subs, run {run}"),
                    kind.name(),
                    &measured,
                );
                point[i].0.push(measured);
            }
            let floor = FloorArgs {
                subscribers,
                rate: RATE,
                frame_size: FRAME_SIZE,
                group_frames: GROUP_FRAMES,
                duration: setup.duration,
            };
            let outcome = floor::run(&floor, &setup.floor).await?;
            let measured = Run {
                peak_rss_kib: outcome.after.map_or(0, |s| s.rss_kib),
                outcome,
            };
            progress(
                &format!("{subscribers} subs, run {run}"),
                "floor",
                &measured,
            );
            point[2].0.push(measured);
        }
        results.push(point);
    }
    Ok(results)
}

/// The highest rate each run of each relay delivers at 99 % or more, at 10 subscribers of
/// 64 KiB frames: from `start` up by `step` while it holds, or down by `step` until it holds
/// (0 when even `step` fails).
async fn high_rate(
    setup: &Setup,
    start: u32,
    step: u32,
    smoke: bool,
) -> anyhow::Result<[Vec<f64>; 2]> {
    let mut best = [Vec::new(), Vec::new()];
    let steps = if smoke { 1 } else { MAX_SEARCH_STEPS };
    for run in 0..setup.runs {
        for (i, (kind, binary)) in setup.binaries.iter().enumerate() {
            let mut highest = 0;
            let mut rate = start.max(step);
            let mut upwards = None;
            for _ in 0..steps {
                let args = load_args(
                    HIGH_RATE_SUBSCRIBERS,
                    rate,
                    HIGH_RATE_FRAME,
                    setup.search_duration,
                );
                let measured = measure_relay(setup, *kind, binary, &args).await?;
                progress(
                    &format!("high rate {rate}/s, run {run}"),
                    kind.name(),
                    &measured,
                );
                let held = measured.delivery() >= HIGH_RATE_DELIVERY;
                let up = *upwards.get_or_insert(held);
                if held {
                    highest = rate;
                }
                if held != up || (!up && rate <= step) {
                    break;
                }
                rate = if up { rate + step } else { rate - step };
            }
            best[i].push(f64::from(highest));
        }
    }
    Ok(best)
}

/// Runs of each relay at the high-rate point at `rate` (the overload).
async fn at_high_rate(setup: &Setup, rate: u32) -> anyhow::Result<[Runs; 2]> {
    let mut results = <[Runs; 2]>::default();
    for run in 0..setup.runs {
        let args = load_args(HIGH_RATE_SUBSCRIBERS, rate, HIGH_RATE_FRAME, setup.duration);
        for (i, (kind, binary)) in setup.binaries.iter().enumerate() {
            let measured = measure_relay(setup, *kind, binary, &args).await?;
            progress(
                &format!("overload {rate}/s, run {run}"),
                kind.name(),
                &measured,
            );
            results[i].0.push(measured);
        }
    }
    Ok(results)
}

/// Churn cycles per second of each relay: a publisher at the fan-out points' rate, workers
/// that connect, subscribe, take a frame and leave, and one that publishes a fresh track.
async fn churn(setup: &Setup) -> anyhow::Result<[Runs; 2]> {
    let mut results = <[Runs; 2]>::default();
    for run in 0..setup.runs {
        let mut args = load_args(0, RATE, FRAME_SIZE, setup.duration);
        args.churn_workers = CHURN_WORKERS;
        args.publisher_churn = true;
        for (i, (kind, binary)) in setup.binaries.iter().enumerate() {
            let measured = measure_relay(setup, *kind, binary, &args).await?;
            eprintln!(
                "churn, run {run}: {}: {:.0} cycles/s, {} failed",
                kind.name(),
                measured.outcome.churn_per_sec(),
                measured.outcome.churn_failed
            );
            results[i].0.push(measured);
        }
    }
    Ok(results)
}

fn load_args(subscribers: usize, rate: u32, frame_size: usize, duration: u64) -> LoadArgs {
    LoadArgs {
        url: None,
        subscribers,
        rate,
        frame_size,
        group_frames: GROUP_FRAMES,
        duration,
        idle: 0,
        churn_workers: 0,
        publisher_churn: false,
        churn_cycles: None,
        churn_pause_ms: 0,
        tls_disable_verify: true,
        relay_pid: None,
    }
}

/// Starts a fresh relay, loads it as `args` say, samples its RSS meanwhile, stops it.
async fn measure_relay(
    setup: &Setup,
    kind: RelayKind,
    binary: &Path,
    args: &LoadArgs,
) -> anyhow::Result<Run> {
    let extra = match kind {
        RelayKind::Ours => &setup.relay_args[..],
        RelayKind::Reference => &[],
    };
    let relay = RelayProcess::start(kind, binary, &setup.cert, &setup.key, extra)
        .await
        .with_context(|| format!("start {}", kind.name()))?;
    let mut args = args.clone();
    args.url = Some(relay.url());
    args.relay_pid = Some(relay.pid());
    let pid = relay.pid();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        let mut interval = tokio::time::interval(RSS_PERIOD);
        loop {
            interval.tick().await;
            match ProcessSample::read(pid) {
                Some(sample) => peak = sample.rss_kib.max(peak),
                None => return peak,
            }
        }
    });
    let outcome = load::run(&args).await;
    // Ends the sampler, whose last sample failed once the process is gone.
    relay.stop().await;
    let peak_rss_kib = sampler.await.unwrap_or(0);
    Ok(Run {
        outcome: outcome.with_context(|| format!("load {}", kind.name()))?,
        peak_rss_kib,
    })
}

fn progress(what: &str, who: &str, run: &Run) {
    eprintln!(
        "{what}: {who}: {:.2} CPU-s/GB, {:.2}% delivered, p99 {:.1} ms, RSS {:.1} MiB",
        run.cpu_per_gb(),
        run.delivery(),
        run.p99(),
        run.rss_mib()
    );
}
