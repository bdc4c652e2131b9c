//! Reading a group stream from the peer into a group (spec §5.6, §6.11), within the limits
//! of what one peer may make the session hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::FutureExt;

use super::stream::Reader;
use super::SessionStats;
use crate::message::FrameHeader;
use crate::model::{CacheBudget, FrameProducer, GroupProducer};
use crate::Error;

/// What one group read from the peer may cost.
pub(super) struct GroupLimits {
    pub(super) max_frame_size: u64,
    pub(super) max_group_size: u64,
    /// The relay-wide cache budget: past twice its limit, incoming groups are refused.
    pub(super) budget: Option<Arc<CacheBudget>>,
    /// The connection's receive budget.
    pub(super) recv: Arc<RecvBudget>,
    pub(super) stats: Arc<SessionStats>,
}

impl GroupLimits {
    /// Whether `n` more payload bytes may be held; if so, they are taken from the
    /// connection's receive budget (and must be given back).
    fn take(&self, n: u64) -> bool {
        let over_cache = self
            .budget
            .as_deref()
            .is_some_and(|budget| budget.used() > budget.limit().saturating_mul(2));
        !over_cache && self.recv.take(n)
    }
}

/// The payload bytes held by one connection's unfinished groups, and their limit
/// ([`SessionOptions::max_recv_bytes`](super::SessionOptions::max_recv_bytes)).
#[derive(Debug)]
pub(super) struct RecvBudget {
    used: AtomicU64,
    limit: u64,
}

impl RecvBudget {
    /// A budget of `limit` bytes, none used.
    pub(super) fn new(limit: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            limit,
        }
    }

    /// Takes `n` bytes, or nothing (returning false) if that would exceed the limit.
    fn take(&self, n: u64) -> bool {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.limit {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Bytes taken from a [`RecvBudget`] by one group, given back when the group's stream ends.
struct Held<'a> {
    budget: &'a RecvBudget,
    bytes: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// What a frame costs beyond its payload (its shared state), so that a flood of empty frames
/// is bounded like a flood of bytes.
const FRAME_OVERHEAD: u64 = 64;

/// Reads FRAMEs into `group` until FIN (spec §5.6, §6.11). Payloads are passed on as the
/// chunks quinn delivers, without copying.
///
/// Once `uncached` resolves (the group left its track's cache), no more payload is taken:
/// a frame in progress is stopped at once with [`Error::Cancel`], and so is the next FRAME
/// header; only the FIN of a group whose frames are complete is still accepted, so its
/// consumers see it end cleanly. Stops with [`Error::BoundsExceeded`] at a FRAME header past
/// the frame or group limit, and at a chunk past the connection's receive budget or the
/// relay's cache budget.
pub(super) async fn read_frames(
    reader: &mut Reader,
    group: &mut GroupProducer,
    limits: &GroupLimits,
    uncached: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(uncached);
    let mut held = Held {
        budget: &limits.recv,
        bytes: 0,
    };
    let mut cost = 0u64;
    let mut batch = Vec::new();
    loop {
        let Some(FrameHeader { size }) = reader.decode_maybe().await? else {
            return Ok(());
        };
        if (&mut uncached).now_or_never().is_some() {
            return Err(Error::Cancel);
        }
        cost = cost.saturating_add(size).saturating_add(FRAME_OVERHEAD);
        if size > limits.max_frame_size || cost > limits.max_group_size || !limits.take(0) {
            return Err(Error::BoundsExceeded);
        }
        limits.stats.frame_received();
        // Published with its first chunks, so that its consumers wake once for both.
        let mut frame: Option<FrameProducer> = None;
        let mut remaining = size;
        while remaining > 0 {
            let max = usize::try_from(remaining).unwrap_or(usize::MAX);
            let mut read = tokio::select! {
                biased;
                () = &mut uncached => Err(Error::Cancel),
                res = reader.read_chunk(max) => res,
            };
            // What else has arrived is taken with it, so the frame's consumers wake once for
            // the batch rather than once per packet.
            loop {
                let chunk = match read {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => return Err(Error::WrongSize),
                    Err(err) => {
                        // Close the frame with the real cause; dropping it would say WrongSize.
                        if let Some(frame) = frame {
                            frame.close(err.clone());
                        }
                        return Err(err);
                    }
                };
                let len = chunk.len() as u64;
                if !limits.take(len) {
                    if let Some(frame) = frame {
                        frame.close(Error::BoundsExceeded);
                    }
                    return Err(Error::BoundsExceeded);
                }
                limits.stats.received(len);
                held.bytes += len;
                remaining -= len;
                batch.push(chunk);
                if remaining == 0 {
                    break;
                }
                let max = usize::try_from(remaining).unwrap_or(usize::MAX);
                match reader.read_chunk(max).now_or_never() {
                    Some(next) => read = next,
                    None => break,
                }
            }
            match &mut frame {
                Some(frame) => frame.write_chunks(&mut batch)?,
                None => frame = Some(group.create_frame_with(size, &mut batch)?),
            }
        }
        if frame.is_none() {
            // An empty frame: nothing to wait for.
            group.create_frame_with(0, &mut batch)?;
        }
    }
}
