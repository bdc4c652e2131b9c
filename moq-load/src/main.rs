//! `moq-load`: drives a MoqTransfork relay with one publisher and many subscribers for a
//! bounded time, then reports delivery, loss and end-to-end latency (and the relay's CPU and
//! memory when given its pid).
//!
//! It can also hold idle sessions (to measure what one costs the relay) and churn: workers
//! that connect, subscribe, take one frame and leave, and a worker that publishes a fresh
//! track, has it received through the relay, and leaves (scripts/soak.sh).
//!
//! Every frame carries the microsecond it was written at (the publisher and the subscribers run
//! in this one process, so they share a clock); a subscriber's latency is the time from the
//! publisher's write to the subscriber holding the whole frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use moq_transfork::model::{Announced, GroupConsumer};
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{Path, Session, Track};

mod churn;

/// Caps that keep every run bounded, whatever the flags say.
const MAX_SUBSCRIBERS: usize = 2000;
const MAX_IDLE: usize = 5000;
const MAX_CHURN_WORKERS: usize = 64;
const MAX_CHURN_CYCLES: u64 = 10_000_000;
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_SAMPLES: usize = 2_000_000;

/// Load a MoqTransfork relay: one publisher, N subscribers, for a bounded time.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The relay: `https://host:port/` or `moqf://host:port`.
    url: url::Url,
    /// Subscribers, each on its own connection (at most 2000).
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Frames per second written by the publisher.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Bytes per frame (at least 8, for the timestamp).
    #[arg(long, default_value_t = 1200)]
    frame_size: usize,
    /// Frames per group (a group is a "GOP": new subscribers start at its frame 0).
    #[arg(long, default_value_t = 30)]
    group_frames: u32,
    /// Seconds of publishing (at most 3600).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Idle sessions (SETUP done, nothing else) to open before publishing and hold until the
    /// end (at most 5000); with --relay-pid, reports the relay's memory per idle session.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Churn workers (at most 64), each repeating: connect, wait for the track's
    /// announcement, subscribe, take one frame, close.
    #[arg(long, default_value_t = 0)]
    churn_workers: usize,
    /// Also run one worker that repeats: connect, publish a fresh track, have it received
    /// through the relay by a second session, close both.
    #[arg(long)]
    publisher_churn: bool,
    /// Churn cycles in all, across workers; publishing stops once they are done (default:
    /// as many as --duration allows).
    #[arg(long)]
    churn_cycles: Option<u64>,
    /// Milliseconds each churn worker waits between two cycles.
    #[arg(long, default_value_t = 0)]
    churn_pause_ms: u64,
    /// Accept any certificate (development relays).
    #[arg(long)]
    tls_disable_verify: bool,
    /// The relay's process id, to report its CPU time and resident memory.
    #[arg(long)]
    relay_pid: Option<u32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(args.frame_size >= 8, "--frame-size must be at least 8");
    anyhow::ensure!(
        args.rate > 0 && args.group_frames > 0,
        "--rate and --group-frames must be positive"
    );
    let subscribers = args.subscribers.min(MAX_SUBSCRIBERS);
    let duration = Duration::from_secs(args.duration).min(MAX_DURATION);

    let endpoint = Endpoint::bind(EndpointConfig {
        bind: "[::]:0".parse()?,
        server: None,
        client: if args.tls_disable_verify {
            ClientTls::disable_verify()
        } else {
            ClientTls::system_roots()?
        },
    })?;
    let path = Path::from_iter(["moq-load", &std::process::id().to_string()]);

    // The publisher goes first, and every subscriber waits to see its announcement.
    let publisher = connect(&endpoint, &args.url).await.context("publisher")?;
    let (producer, consumer) = Track::new(path.clone()).produce();
    publisher.publish(consumer)?;

    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let mut sessions = Vec::with_capacity(subscribers);
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let session = connect(&endpoint, &args.url).await.context("subscriber")?;
        wait_announced(&session, &path).await?;
        let track = session.subscribe(Track::new(path.clone()));
        let stats = stats.clone();
        tasks.push(tokio::spawn(
            async move { subscribe(track, start, stats).await },
        ));
        sessions.push(session);
    }
    println!(
        "{subscribers} subscribers ready after {:?}",
        start.elapsed()
    );
    let idle = hold_idle(&endpoint, &args).await?;

    let relay_before = args.relay_pid.and_then(ProcessSample::read);
    let publish_start = Instant::now();
    let churn = churn::Churn {
        endpoint: endpoint.clone(),
        url: args.url.clone(),
        path: path.clone(),
        max_cycles: args.churn_cycles.unwrap_or(u64::MAX).min(MAX_CHURN_CYCLES),
        deadline: publish_start + duration,
        pause: Duration::from_millis(args.churn_pause_ms),
        stats: Arc::default(),
    };
    let mut workers = Vec::new();
    for _ in 0..args.churn_workers.min(MAX_CHURN_WORKERS) {
        workers.push(tokio::spawn(churn.clone().subscriber_worker()));
    }
    if args.publisher_churn {
        workers.push(tokio::spawn(churn.clone().publisher_worker(0)));
    }
    let churned = futures::future::join_all(workers);
    let sent = AtomicU64::new(0);
    let publishing = publish(&producer, &args, start, duration, &sent);
    if args.churn_cycles.is_some() {
        // Publish until the cycles are done (or the time is up).
        tokio::select! {
            published = publishing => published?,
            _ = churned => {}
        }
    } else {
        let (published, _) = tokio::join!(publishing, churned);
        published?;
    }
    let sent = sent.load(Ordering::Relaxed);
    let elapsed = publish_start.elapsed();
    // Let the last frames arrive, then end the track so every subscriber finishes.
    drop(producer);
    let relay_after = args.relay_pid.and_then(ProcessSample::read);
    // A relay that does not end subscriptions with the track (0.6.15) gets a grace period.
    let _ = tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(tasks)).await;

    report(
        &args,
        subscribers,
        sent,
        elapsed,
        &stats,
        relay_before,
        relay_after,
    );
    let churn = &churn.stats;
    if args.churn_workers > 0 || args.publisher_churn {
        println!(
            "churn: {} subscriber cycles, {} publisher cycles, {} failed",
            churn.subscribed.load(Ordering::Relaxed),
            churn.published.load(Ordering::Relaxed),
            churn.failed.load(Ordering::Relaxed)
        );
    }
    drop((sessions, idle));
    Ok(())
}

/// Opens `--idle` sessions that do nothing after SETUP and reports, given the relay's pid,
/// what each one costs it.
async fn hold_idle(endpoint: &Endpoint, args: &Args) -> anyhow::Result<Vec<Session>> {
    let count = args.idle.min(MAX_IDLE);
    if count == 0 {
        return Ok(Vec::new());
    }
    let before = args.relay_pid.and_then(ProcessSample::read);
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        idle.push(connect(endpoint, &args.url).await.context("idle session")?);
    }
    // An INFO round trip on each shows the relay has finished setting each session up.
    for session in &idle {
        let path = Path::from_iter(["moq-load", "no-such-track"]);
        let _ = tokio::time::timeout(Duration::from_secs(10), session.info(path)).await;
    }
    let after = args.relay_pid.and_then(ProcessSample::read);
    if let (Some(before), Some(after)) = (before, after) {
        let delta = after.rss_kib.saturating_sub(before.rss_kib);
        println!(
            "{count} idle sessions: relay RSS {} KiB -> {} KiB, {:.1} KiB each",
            before.rss_kib,
            after.rss_kib,
            delta as f64 / count as f64
        );
    }
    Ok(idle)
}

async fn connect(endpoint: &Endpoint, url: &url::Url) -> anyhow::Result<Session> {
    let conn = endpoint
        .connect(url)
        .await
        .with_context(|| format!("connect {url}"))?;
    Ok(Session::connect(conn).await?)
}

async fn wait_announced(session: &Session, path: &Path) -> anyhow::Result<()> {
    let mut announced = session.announced(path.clone());
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = announced.next().await {
            if event == Announced::Active(path.clone()) {
                return Ok(());
            }
        }
        anyhow::bail!("announcements ended")
    })
    .await
    .context("publisher never announced")?
}

/// Writes `rate` frames a second for `duration`, counting them in `sent`.
async fn publish(
    producer: &moq_transfork::model::TrackProducer,
    args: &Args,
    start: Instant,
    duration: Duration,
    sent: &AtomicU64,
) -> anyhow::Result<()> {
    let mut interval = tokio::time::interval(Duration::from_secs(1) / args.rate);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let filler = vec![0u8; args.frame_size - 8];
    let deadline = Instant::now() + duration;
    let mut written = 0u64;
    let mut group = producer.append_group()?;
    while Instant::now() < deadline {
        interval.tick().await;
        if written > 0 && written % u64::from(args.group_frames) == 0 {
            group = producer.append_group()?;
        }
        let mut frame = BytesMut::with_capacity(args.frame_size);
        frame.put_u64(start.elapsed().as_micros() as u64);
        frame.put_slice(&filler);
        group.write_frame(frame.freeze());
        written += 1;
        sent.store(written, Ordering::Relaxed);
    }
    Ok(())
}

#[derive(Default)]
struct Stats {
    frames: AtomicU64,
    bytes: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

impl Stats {
    fn record(&self, frame: &Bytes, start: Instant) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        let Some(stamp) = frame
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
        else {
            return;
        };
        let latency = (start.elapsed().as_micros() as u64).saturating_sub(stamp);
        let mut latencies = self.latencies_us.lock().unwrap_or_else(|p| p.into_inner());
        if latencies.len() < MAX_SAMPLES {
            latencies.push(latency.min(u64::from(u32::MAX)) as u32);
        }
    }
}

/// Reads every group as it arrives (concurrently), recording each frame.
async fn subscribe(
    mut track: moq_transfork::model::TrackConsumer,
    start: Instant,
    stats: Arc<Stats>,
) {
    let mut groups = Vec::new();
    while let Ok(Some(group)) = track.next_group().await {
        let stats = stats.clone();
        groups.push(tokio::spawn(read_group(group, start, stats)));
        groups.retain(|task: &tokio::task::JoinHandle<()>| !task.is_finished());
    }
    for group in groups {
        let _ = group.await;
    }
}

async fn read_group(mut group: GroupConsumer, start: Instant, stats: Arc<Stats>) {
    while let Ok(Some(frame)) = group.read_frame().await {
        stats.record(&frame, start);
    }
}

/// CPU time and resident memory of a process, from /proc.
#[derive(Clone, Copy)]
struct ProcessSample {
    at: Instant,
    cpu_ticks: u64,
    rss_kib: u64,
}

impl ProcessSample {
    fn read(pid: u32) -> Option<Self> {
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
            rss_kib,
        })
    }
}

fn report(
    args: &Args,
    subscribers: usize,
    sent: u64,
    elapsed: Duration,
    stats: &Stats,
    before: Option<ProcessSample>,
    after: Option<ProcessSample>,
) {
    let expected = sent * subscribers as u64;
    let received = stats.frames.load(Ordering::Relaxed);
    let bytes = stats.bytes.load(Ordering::Relaxed);
    let mut latencies = stats
        .latencies_us
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((latencies.len() - 1) as f64 * p).round() as usize;
        f64::from(latencies[index]) / 1000.0
    };
    println!(
        "published {sent} frames of {} B at {}/s for {:.1} s",
        args.frame_size,
        args.rate,
        elapsed.as_secs_f64()
    );
    println!(
        "delivered {received}/{expected} frames ({:.3}% loss), {:.1} MB/s to subscribers",
        100.0 * (expected.saturating_sub(received)) as f64 / expected.max(1) as f64,
        bytes as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    if let (Some(before), Some(after)) = (before, after) {
        // Linux reports CPU time in clock ticks, 100 per second on every common configuration.
        let cpu = (after.cpu_ticks - before.cpu_ticks) as f64 / 100.0;
        let wall = after.at.duration_since(before.at).as_secs_f64();
        println!(
            "relay: {:.0}% of one core, RSS {} KiB -> {} KiB",
            100.0 * cpu / wall,
            before.rss_kib,
            after.rss_kib
        );
    }
}
