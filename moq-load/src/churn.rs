//! Churn: workers that connect, subscribe, receive one frame and leave, over and over, and
//! a worker that does the same as a publisher; bounded in cycles and in time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use moq_transfork::transport::Endpoint;
use moq_transfork::{Path, Session, SessionOptions, Track};

/// How long one cycle may take before it counts as failed.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The cycles done so far, shared by every worker.
#[derive(Debug, Default)]
pub(crate) struct ChurnStats {
    /// Cycles started (also the budget counter).
    started: AtomicU64,
    /// Subscriber cycles that received their frame.
    pub(crate) subscribed: AtomicU64,
    /// Publisher cycles whose track reached a subscriber through the relay.
    pub(crate) published: AtomicU64,
    /// Cycles that failed or timed out.
    pub(crate) failed: AtomicU64,
}

impl ChurnStats {
    /// Takes one cycle from the budget of `max`; false once it is spent.
    fn take(&self, max: u64) -> bool {
        self.started.fetch_add(1, Ordering::Relaxed) < max
    }
}

/// What every worker needs: the relay, the endpoint to dial from and the limits.
#[derive(Clone, Debug)]
pub(crate) struct Churn {
    pub(crate) endpoint: Endpoint,
    pub(crate) url: url::Url,
    /// The steady publisher's path, which subscriber cycles subscribe to.
    pub(crate) path: Path,
    /// Cycles in all, across workers.
    pub(crate) max_cycles: u64,
    /// No cycle starts after this.
    pub(crate) deadline: Instant,
    /// A worker's pause between two cycles.
    pub(crate) pause: Duration,
    pub(crate) stats: Arc<ChurnStats>,
}

impl Churn {
    /// Subscriber cycles until the budget or the deadline is reached.
    pub(crate) async fn subscriber_worker(self) {
        while Instant::now() < self.deadline && self.stats.take(self.max_cycles) {
            match tokio::time::timeout(CYCLE_TIMEOUT, self.subscriber_cycle()).await {
                Ok(Ok(())) => {
                    self.stats.subscribed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(err)) => self.failed(&err),
                Err(_) => self.failed(&anyhow::anyhow!("subscriber cycle timed out")),
            };
            tokio::time::sleep(self.pause).await;
        }
    }

    /// Publisher cycles (a fresh path each time) until the budget or the deadline is reached.
    pub(crate) async fn publisher_worker(self, worker: usize) {
        let mut n = 0u64;
        while Instant::now() < self.deadline && self.stats.take(self.max_cycles) {
            let path = self.path.clone().push(format!("churn-{worker}-{n}"));
            n += 1;
            match tokio::time::timeout(CYCLE_TIMEOUT, self.publisher_cycle(path)).await {
                Ok(Ok(())) => {
                    self.stats.published.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(err)) => self.failed(&err),
                Err(_) => self.failed(&anyhow::anyhow!("publisher cycle timed out")),
            };
            tokio::time::sleep(self.pause).await;
        }
    }

    fn failed(&self, err: &anyhow::Error) {
        tracing::warn!(%err, "churn cycle failed");
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
    }

    async fn session(&self, options: SessionOptions) -> anyhow::Result<Session> {
        let conn = self.endpoint.connect(&self.url).await.context("connect")?;
        Ok(Session::connect_with(conn, options).await?)
    }

    /// Connect, wait for the steady track's announcement, subscribe, take one frame, close.
    async fn subscriber_cycle(&self) -> anyhow::Result<()> {
        let session = self.session(SessionOptions::default()).await?;
        crate::load::wait_announced(&session, &self.path).await?;
        read_one_frame(&session, &self.path).await?;
        session.close(moq_transfork::Error::Cancel);
        Ok(())
    }

    /// Connect, publish `path` with one group, have a second session subscribe to it through
    /// the relay and take its frame, close both.
    async fn publisher_cycle(&self, path: Path) -> anyhow::Result<()> {
        let publisher = self.session(SessionOptions::default()).await?;
        let (producer, consumer) = Track::new(path.clone()).produce();
        publisher.publish(consumer)?;
        producer
            .append_group()?
            .write_frame(Bytes::from_static(b"churn"));

        let subscriber = self.session(SessionOptions::default()).await?;
        crate::load::wait_announced(&subscriber, &path).await?;
        read_one_frame(&subscriber, &path).await?;
        subscriber.close(moq_transfork::Error::Cancel);
        publisher.close(moq_transfork::Error::Cancel);
        Ok(())
    }
}

async fn read_one_frame(session: &Session, path: &Path) -> anyhow::Result<()> {
    let mut track = session.subscribe(Track::new(path.clone()));
    let mut group = track.next_group().await?.context("track ended")?;
    group.read_frame().await?.context("group ended")?;
    Ok(())
}
