//! The pump of a relay track: which origin feeds it, and when an origin that failed is tried
//! again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use super::Origins;
use crate::model::{GroupConsumer, Track, TrackConsumer, TrackProducer};
use crate::session::Session;
use crate::{Error, Path};

/// How long an origin whose upstream subscription failed, while it still offers the path, is
/// left alone before the pump tries it again: doubled after each failure in a row, up to
/// [`RETRY_MAX`]. A publisher may announce a path a moment before it can serve it (a released
/// moq-clock announces before it registers its track), so a refusal is retried, not final.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two tries of one origin.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Failures in a row (4.5 s of retries) after which an origin is no longer tried for the
/// relay track, until it withdraws the path (and announces it again).
const RETRY_ATTEMPTS: u32 = 8;

/// Why the pump does not use an origin now.
#[derive(Debug, Clone, Copy)]
struct Setback {
    /// Failures of its upstream subscription in a row.
    failures: u32,
    /// When it may be tried again; `None` when it is not tried again until it re-announces
    /// (it ended the track cleanly, or failed [`RETRY_ATTEMPTS`] times).
    retry: Option<Instant>,
}

impl Setback {
    /// The setback after one more failure, at `now`.
    fn failed(previous: Option<Self>, now: Instant) -> Self {
        let failures = previous.map_or(0, |s| s.failures) + 1;
        let retry = (failures < RETRY_ATTEMPTS).then(|| {
            let delay = RETRY_FIRST.saturating_mul(1 << (failures - 1).min(16));
            now + delay.min(RETRY_MAX)
        });
        Self { failures, retry }
    }
}

/// Feeds a relay track from the newest session offering its path.
///
/// It keeps no [`Session`], only its upstream subscription, so a session that has gone away is
/// released however long the relay track lives.
pub(super) struct Pump {
    origins: Origins,
    path: Path,
    id: u64,
    producer: TrackProducer,
    changed: Arc<Notify>,
    /// Origins tried and failed (or ended) for this relay track, by origin id.
    setbacks: HashMap<u64, Setback>,
    /// The origin serving now, if any.
    current: Option<u64>,
    /// How the last upstream subscription ended: the end of the relay track when no origin
    /// is left (`None` for a clean end).
    last_end: Option<Error>,
}

/// What the pump does next.
enum Next {
    /// Go on with the current upstream subscription (or keep waiting for a retry).
    Stay,
    /// Subscribe to this origin instead.
    Switch(u64, Session),
    /// No origin is left: the relay track ends, and was removed from the registry.
    End,
}

impl Pump {
    /// The pump of relay track `id` of `path`, fed by `origin` (already subscribed to).
    pub(super) fn new(
        origins: Origins,
        path: Path,
        id: u64,
        producer: TrackProducer,
        changed: Arc<Notify>,
        origin: u64,
    ) -> Self {
        Self {
            origins,
            path,
            id,
            producer,
            changed,
            setbacks: HashMap::new(),
            current: Some(origin),
            last_end: None,
        }
    }

    /// Feeds the relay track from `upstream`, and from the origins that follow, until it is
    /// unused or no origin is left.
    pub(super) async fn run(mut self, upstream: TrackConsumer) {
        let mut upstream = Some(upstream);
        tracing::debug!(path = %self.path, origin = ?self.current, "relay track");
        loop {
            let retry = self.next_retry();
            tokio::select! {
                biased;
                () = self.producer.unused() => {
                    let mut state = self.origins.state();
                    // Under the lock `route` subscribes with, so no consumer joins a relay track
                    // that is going away.
                    if self.producer.consumer_count() == 0 {
                        state.remove_relay(&self.path, self.id);
                        tracing::debug!(path = %self.path, "relay track unused");
                        return;
                    }
                }
                () = self.changed.notified() => {
                    // An origin that withdrew the path starts afresh if it announces it again.
                    for id in self.origins.state().take_withdrawn(&self.path, self.id) {
                        self.setbacks.remove(&id);
                    }
                    upstream = match self.next() {
                        Next::Stay => upstream,
                        Next::Switch(id, session) => Some(self.switch(id, &session)),
                        Next::End => return self.end(),
                    };
                }
                () = sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {
                    upstream = match self.next() {
                        Next::Stay => upstream,
                        Next::Switch(id, session) => Some(self.switch(id, &session)),
                        Next::End => return self.end(),
                    };
                }
                res = next_group(&mut upstream), if upstream.is_some() => match res {
                    Ok(Some(group)) => {
                        // The origin serves: its past failures are forgiven.
                        if let Some(current) = self.current {
                            self.setbacks.remove(&current);
                        }
                        if let Err(err) = self.producer.insert_group(group, Instant::now()) {
                            tracing::debug!(path = %self.path, %err, "group not relayed");
                        }
                    }
                    end => {
                        // Never stay on an origin whose subscription ended: retry it later
                        // if it failed, and not at all if it ended the track cleanly.
                        upstream = None;
                        let now = Instant::now();
                        if let Some(current) = self.current.take() {
                            let previous = self.setbacks.get(&current).copied();
                            let setback = match &end {
                                Err(_) => Setback::failed(previous, now),
                                Ok(_) => Setback { failures: previous.map_or(0, |s| s.failures), retry: None },
                            };
                            tracing::debug!(path = %self.path, origin = current, ?end, ?setback, "upstream ended");
                            self.setbacks.insert(current, setback);
                        }
                        self.last_end = end.err();
                        upstream = match self.next() {
                            Next::Stay => upstream,
                            Next::Switch(id, session) => Some(self.switch(id, &session)),
                            Next::End => return self.end(),
                        };
                    }
                },
            }
        }
    }

    /// The earliest time an origin in backoff may be tried again, if any is still waiting.
    fn next_retry(&self) -> Option<Instant> {
        let now = Instant::now();
        self.setbacks
            .values()
            .filter_map(|setback| setback.retry)
            .filter(|retry| *retry > now)
            .min()
    }

    /// Decides which origin should serve now: the newest one offering the path that is not set
    /// back. Under the registry lock, so that ending removes the relay track before any new
    /// subscriber could join it.
    fn next(&mut self) -> Next {
        let now = Instant::now();
        let mut state = self.origins.state();
        let usable = |id: &u64| {
            self.setbacks
                .get(id)
                .is_none_or(|setback| setback.retry.is_some_and(|retry| retry <= now))
        };
        let offered = state
            .routes
            .get(&self.path)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some((id, session)) = offered.iter().rev().find(|(id, _)| usable(id)) {
            if Some(*id) == self.current {
                return Next::Stay;
            }
            return Next::Switch(*id, session.clone());
        }
        // Nothing usable now. The current origin goes on serving, even if it withdrew the path;
        // without one, wait for an origin in backoff that still offers the path.
        let waiting = offered.iter().any(|(id, _)| {
            self.setbacks
                .get(id)
                .is_some_and(|setback| setback.retry.is_some_and(|retry| retry > now))
        });
        if self.current.is_some() || waiting {
            return Next::Stay;
        }
        state.remove_relay(&self.path, self.id);
        Next::End
    }

    /// Ends the relay track as its last upstream subscription did, once no origin is left.
    fn end(self) {
        tracing::debug!(path = %self.path, end = ?self.last_end, "relay track ended");
        if let Some(err) = self.last_end {
            self.producer.close(err);
        }
    }

    /// Subscribes to origin `id`; the old upstream subscription is dropped by the caller's
    /// assignment. The relay track forgets the old origin's sequences, which the new one may
    /// reuse.
    fn switch(&mut self, id: u64, session: &Session) -> TrackConsumer {
        tracing::debug!(path = %self.path, from = ?self.current, to = id, "origin changed");
        self.current = Some(id);
        let upstream = session.subscribe(Track::new(self.path.clone()));
        self.producer.forget_groups();
        upstream
    }
}

/// The next group of the upstream subscription; never called without one.
async fn next_group(upstream: &mut Option<TrackConsumer>) -> Result<Option<GroupConsumer>, Error> {
    match upstream {
        Some(upstream) => upstream.next_group().await,
        None => std::future::pending().await,
    }
}
