//! The load mode: one publisher and N subscribers through a relay for a bounded time.
//!
//! Every frame carries the microsecond it was written at (the publisher and the subscribers run
//! in this one process, so they share a clock); a subscriber's latency is the time from the
//! publisher's write to the subscriber holding the whole frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use moq_transfork::model::{Announced, GroupConsumer};
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig, Tuning};
use moq_transfork::{Path, Session, Track};

use crate::churn;
use crate::process::ProcessSample;

/// Caps that keep every run bounded, whatever the flags say.
const MAX_SUBSCRIBERS: usize = 2000;
const MAX_IDLE: usize = 5000;
const MAX_CHURN_WORKERS: usize = 64;
const MAX_CHURN_CYCLES: u64 = 10_000_000;
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_SAMPLES: usize = 2_000_000;

/// The receive and send buffers asked for the load tool's UDP socket, which the publisher and
/// every subscriber share. With Linux's default (208 KiB) it overflows from about 100
/// subscribers on a busy machine, and the relay's retransmissions then inflate its CPU per GB
/// and the latency measured (docs/performance.md). Linux caps it at `net.core.rmem_max`.
pub(crate) const CLIENT_UDP_BUFFER: usize = 4 << 20;

/// The flags of the load mode.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// The relay: `https://host:port/` or `moqf://host:port`.
    #[arg(required = true)]
    pub(crate) url: Option<url::Url>,
    /// Subscribers, each on its own connection (at most 2000).
    #[arg(long, default_value_t = 10)]
    pub(crate) subscribers: usize,
    /// Frames per second written by the publisher.
    #[arg(long, default_value_t = 100)]
    pub(crate) rate: u32,
    /// Bytes per frame (at least 8, for the timestamp).
    #[arg(long, default_value_t = 1200)]
    pub(crate) frame_size: usize,
    /// Frames per group (a group is a "GOP": new subscribers start at its frame 0).
    #[arg(long, default_value_t = 30)]
    pub(crate) group_frames: u32,
    /// Seconds of publishing (at most 3600).
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
    /// Idle sessions (SETUP done, nothing else) to open before publishing and hold until the
    /// end (at most 5000); with --relay-pid, reports the relay's memory per idle session.
    #[arg(long, default_value_t = 0)]
    pub(crate) idle: usize,
    /// Churn workers (at most 64), each repeating: connect, wait for the track's
    /// announcement, subscribe, take one frame, close.
    #[arg(long, default_value_t = 0)]
    pub(crate) churn_workers: usize,
    /// Also run one worker that repeats: connect, publish a fresh track, have it received
    /// through the relay by a second session, close both.
    #[arg(long)]
    pub(crate) publisher_churn: bool,
    /// Churn cycles in all, across workers; publishing stops once they are done (default:
    /// as many as --duration allows).
    #[arg(long)]
    pub(crate) churn_cycles: Option<u64>,
    /// Milliseconds each churn worker waits between two cycles.
    #[arg(long, default_value_t = 0)]
    pub(crate) churn_pause_ms: u64,
    /// Accept any certificate (development relays).
    #[arg(long)]
    pub(crate) tls_disable_verify: bool,
    /// The relay's process id, to report its CPU time and resident memory.
    #[arg(long)]
    pub(crate) relay_pid: Option<u32>,
}

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) subscribers: usize,
    /// Frames published.
    pub(crate) sent: u64,
    /// Frames received, over all subscribers.
    pub(crate) received: u64,
    /// Payload bytes received, over all subscribers.
    pub(crate) bytes: u64,
    /// How long publishing took.
    pub(crate) elapsed: Duration,
    /// End-to-end latency of every frame received (up to a cap), in µs, sorted.
    pub(crate) latencies_us: Vec<u32>,
    /// The relay (or floor server) before and after publishing, given its pid.
    pub(crate) before: Option<ProcessSample>,
    pub(crate) after: Option<ProcessSample>,
    /// Churn cycles that completed (subscriber and publisher) and that failed.
    pub(crate) churned: u64,
    pub(crate) churn_failed: u64,
}

/// Runs one load as `args` say and returns what it measured.
pub(crate) async fn run(args: &LoadArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(args.frame_size >= 8, "--frame-size must be at least 8");
    anyhow::ensure!(
        args.rate > 0 && args.group_frames > 0,
        "--rate and --group-frames must be positive"
    );
    let url = args.url.clone().context("no relay URL")?;
    let subscribers = args.subscribers.min(MAX_SUBSCRIBERS);
    let duration = Duration::from_secs(args.duration).min(MAX_DURATION);

    let mut tuning = Tuning::default();
    tuning.udp_recv_buffer = Some(CLIENT_UDP_BUFFER);
    tuning.udp_send_buffer = Some(CLIENT_UDP_BUFFER);
    let endpoint = Endpoint::bind_tuned(
        EndpointConfig {
            bind: "[::]:0".parse()?,
            server: None,
            client: if args.tls_disable_verify {
                ClientTls::disable_verify()
            } else {
                ClientTls::system_roots()?
            },
        },
        tuning,
    )?;
    let path = Path::from_iter(["moq-load", &std::process::id().to_string()]);

    // The publisher goes first, and every subscriber waits to see its announcement.
    let publisher = connect(&endpoint, &url).await.context("publisher")?;
    let (producer, consumer) = Track::new(path.clone()).produce();
    publisher.publish(consumer)?;

    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let mut sessions = Vec::with_capacity(subscribers);
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let session = connect(&endpoint, &url).await.context("subscriber")?;
        wait_announced(&session, &path).await?;
        let track = session.subscribe(Track::new(path.clone()));
        let stats = stats.clone();
        tasks.push(tokio::spawn(
            async move { subscribe(track, start, stats).await },
        ));
        sessions.push(session);
    }
    tracing::info!(subscribers, elapsed = ?start.elapsed(), "subscribers ready");
    let idle = hold_idle(&endpoint, &url, args).await?;

    let before = args.relay_pid.and_then(ProcessSample::read);
    let publish_start = Instant::now();
    let churn = churn::Churn {
        endpoint: endpoint.clone(),
        url: url.clone(),
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
    let publishing = publish(&producer, args, start, duration, &sent);
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
    let after = args.relay_pid.and_then(ProcessSample::read);
    // A relay that does not end subscriptions with the track (0.6.15) gets a grace period.
    let _ = tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(tasks)).await;

    let churn = &churn.stats;
    let outcome = Outcome {
        subscribers,
        sent,
        received: stats.frames.load(Ordering::Relaxed),
        bytes: stats.bytes.load(Ordering::Relaxed),
        elapsed,
        latencies_us: stats.sorted_latencies(),
        before,
        after,
        churned: churn.subscribed.load(Ordering::Relaxed) + churn.published.load(Ordering::Relaxed),
        churn_failed: churn.failed.load(Ordering::Relaxed),
    };
    for session in sessions.iter().chain(&idle) {
        session.close(moq_transfork::Error::Cancel);
    }
    publisher.close(moq_transfork::Error::Cancel);
    endpoint.close();
    // Bounded: the closes above go out at once, unless the relay is gone.
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    Ok(outcome)
}

/// Opens `--idle` sessions that do nothing after SETUP and reports, given the relay's pid,
/// what each one costs it.
async fn hold_idle(
    endpoint: &Endpoint,
    url: &url::Url,
    args: &LoadArgs,
) -> anyhow::Result<Vec<Session>> {
    let count = args.idle.min(MAX_IDLE);
    if count == 0 {
        return Ok(Vec::new());
    }
    let before = args.relay_pid.and_then(ProcessSample::read);
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        idle.push(connect(endpoint, url).await.context("idle session")?);
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

pub(crate) async fn wait_announced(session: &Session, path: &Path) -> anyhow::Result<()> {
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
    args: &LoadArgs,
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

/// What the subscribers received, shared by all of them.
#[derive(Default)]
pub(crate) struct Stats {
    frames: AtomicU64,
    bytes: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

impl Stats {
    /// Records a frame stamped with the microsecond (since `start`) it was written at.
    fn record(&self, frame: &Bytes, start: Instant) {
        let Some(stamp) = frame
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
        else {
            self.record_latency(frame.len(), None);
            return;
        };
        let latency = (start.elapsed().as_micros() as u64).saturating_sub(stamp);
        self.record_latency(frame.len(), Some(latency));
    }

    /// Records a frame of `len` bytes that took `latency_us` from writer to reader.
    pub(crate) fn record_latency(&self, len: usize, latency_us: Option<u64>) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        let Some(latency) = latency_us else { return };
        let mut latencies = self.latencies_us.lock().unwrap_or_else(|p| p.into_inner());
        if latencies.len() < MAX_SAMPLES {
            latencies.push(latency.min(u64::from(u32::MAX)) as u32);
        }
    }

    /// Frames and bytes received so far.
    pub(crate) fn received(&self) -> (u64, u64) {
        (
            self.frames.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// The latencies recorded so far, sorted.
    pub(crate) fn sorted_latencies(&self) -> Vec<u32> {
        let mut latencies = self
            .latencies_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        latencies.sort_unstable();
        latencies
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

impl Outcome {
    /// Frames the subscribers should have received.
    pub(crate) fn expected(&self) -> u64 {
        self.sent * self.subscribers as u64
    }

    /// The share of expected frames received, in percent.
    pub(crate) fn delivery_pct(&self) -> f64 {
        100.0 * self.received as f64 / self.expected().max(1) as f64
    }

    /// The latency at quantile `q` (0 to 1), in ms; NaN without samples.
    pub(crate) fn latency_ms(&self, q: f64) -> f64 {
        let latencies = &self.latencies_us;
        if latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((latencies.len() - 1) as f64 * q).round() as usize;
        f64::from(latencies[index]) / 1000.0
    }

    /// CPU seconds the measured process spent while publishing, if it was measured.
    pub(crate) fn cpu_secs(&self) -> Option<f64> {
        Some(self.after?.cpu_secs_since(&self.before?))
    }

    /// CPU seconds of the measured process per GB (10^9 bytes) delivered to subscribers.
    pub(crate) fn cpu_per_gb(&self) -> Option<f64> {
        let cpu = self.cpu_secs()?;
        (self.bytes > 0).then(|| cpu / (self.bytes as f64 / 1e9))
    }

    /// Completed churn cycles per second.
    pub(crate) fn churn_per_sec(&self) -> f64 {
        self.churned as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// Prints the report of the load mode.
    pub(crate) fn print(&self, args: &LoadArgs) {
        println!(
            "published {} frames of {} B at {}/s for {:.1} s",
            self.sent,
            args.frame_size,
            args.rate,
            self.elapsed.as_secs_f64()
        );
        self.print_delivery("relay");
        if args.churn_workers > 0 || args.publisher_churn {
            println!(
                "churn: {} cycles ({:.0}/s), {} failed",
                self.churned,
                self.churn_per_sec(),
                self.churn_failed
            );
        }
    }

    /// Prints delivery, latency and, if measured, the CPU and memory of `process`.
    pub(crate) fn print_delivery(&self, process: &str) {
        let expected = self.expected();
        println!(
            "delivered {}/{expected} frames ({:.3}% loss), {:.1} MB/s to subscribers",
            self.received,
            100.0 * (expected.saturating_sub(self.received)) as f64 / expected.max(1) as f64,
            self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
        );
        println!(
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.latency_ms(0.5),
            self.latency_ms(0.9),
            self.latency_ms(0.99),
            self.latency_ms(1.0)
        );
        if let (Some(before), Some(after)) = (self.before, self.after) {
            let cpu = after.cpu_secs_since(&before);
            let wall = after.at.duration_since(before.at).as_secs_f64();
            println!(
                "{process}: {:.0}% of one core, RSS {} KiB -> {} KiB, {:.2} CPU-s per delivered GB",
                100.0 * cpu / wall,
                before.rss_kib,
                after.rss_kib,
                self.cpu_per_gb().unwrap_or(f64::NAN)
            );
        }
    }
}
