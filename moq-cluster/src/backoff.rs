//! Exponential backoff with jitter, for redialing links.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first delay after a failure.
pub(crate) const MIN_DELAY: Duration = Duration::from_millis(250);

/// The longest delay between two attempts.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(5);

/// Delays that double after each failure, from [`MIN_DELAY`] up to [`MAX_DELAY`], each drawn
/// at random from the upper half of its step ("equal jitter"), so relays that lost the same
/// peer at the same moment do not redial in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    step: Duration,
    rng: XorShift,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            step: MIN_DELAY,
            rng: XorShift::seeded(),
        }
    }

    /// The delay before the next attempt; the one after will be about twice as long.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(MAX_DELAY);
        let half = step / 2;
        // A fraction in [0, 1) with 53 random bits.
        let fraction = (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }

    /// Starts over from [`MIN_DELAY`], after a success.
    pub(crate) fn reset(&mut self) {
        self.step = MIN_DELAY;
    }
}

/// xorshift64*: plenty for jitter, and no extra dependency.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    /// Seeded from the clock, the process id and a per-process counter, so two generators,
    /// in one process or in two, differ.
    fn seeded() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = nanos ^ u64::from(std::process::id()).rotate_left(32) ^ count;
        Self(splitmix64(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Spreads the bits of a seed (Steele, Lea and Flood's SplitMix64 finaliser).
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_cap() {
        let mut backoff = Backoff::new();
        let mut step = MIN_DELAY;
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} outside {step:?}"
            );
            step = (step * 2).min(MAX_DELAY);
        }
        assert!(backoff.next_delay() <= MAX_DELAY);
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new();
        for _ in 0..6 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= MIN_DELAY);
    }

    #[test]
    fn generators_differ_and_jitter_varies() {
        let (mut a, mut b) = (XorShift::seeded(), XorShift::seeded());
        assert_ne!(a.next(), b.next());
        let delays: Vec<_> = (0..8)
            .map(|_| {
                let mut backoff = Backoff::new();
                backoff.next_delay()
            })
            .collect();
        assert!(delays.iter().any(|delay| *delay != delays[0]), "{delays:?}");
    }
}
