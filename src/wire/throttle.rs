//! Bandwidth limits on the data connection: a GCRA limiter (the governor crate)
//! over KiB cells, whose rate, and the daily window it applies in, may change
//! while a transfer runs.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Local;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::bandwidth::{Rate, Window};

/// Bytes per limiter cell: rates up to 4 TiB/s fit governor's u32 quota.
const CELL: u64 = 1024;

/// Largest piece written at once under a limit: pacing finer than a chunk
/// keeps the link smooth (and the burst allowance small).
pub const PIECE: usize = 64 * 1024;

/// A bandwidth limit, shared by every transfer that holds a clone: a task's
/// own, or the sender-wide cap that all its sends share.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    rate: Rate,
    window: Option<Window>,
    /// The rate in force when `limiter` was built (0: none).
    effective: u64,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl Throttle {
    /// A limit of `rate` (bytes per second on the wire; 0: none), applied only
    /// inside `window` (local time) when one is given.
    pub fn new(rate: Rate, window: Option<Window>) -> Throttle {
        let t = Throttle::default();
        t.set(rate, window);
        t
    }

    /// Changes the limit; running transfers follow from their next piece.
    pub fn set(&self, rate: Rate, window: Option<Window>) {
        let mut s = self.state();
        s.rate = rate;
        s.window = window;
    }

    /// The configured rate (not whether the window is open now).
    pub fn rate(&self) -> Rate {
        self.state().rate
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few assignments: a poisoned lock still
        // guards consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `bytes` (at most [`PIECE`]) may go on the wire.
    pub async fn take(&self, bytes: usize) {
        let limiter = {
            let mut s = self.state();
            let open = s.window.is_none_or(|w| w.contains(Local::now().time()));
            let effective = if open { s.rate.0 } else { 0 };
            if effective != s.effective {
                s.effective = effective;
                s.limiter = limiter(effective).map(Arc::new);
            }
            s.limiter.clone()
        };
        let Some(limiter) = limiter else { return };
        let cells = u32::try_from((bytes as u64).div_ceil(CELL).max(1)).unwrap_or(u32::MAX);
        if let Some(n) = NonZeroU32::new(cells) {
            // The burst holds a whole piece, so capacity is never short.
            let _ = limiter.until_n_ready(n).await;
        }
    }
}

/// A limiter for `rate` bytes per second; `None` for no limit. The burst is a
/// tenth of a second's worth, and at least one piece.
fn limiter(rate: u64) -> Option<DefaultDirectRateLimiter> {
    let per_second = u32::try_from(rate.div_ceil(CELL)).unwrap_or(u32::MAX);
    let per_second = NonZeroU32::new(per_second)?;
    let piece = (PIECE as u64 / CELL) as u32;
    let burst = NonZeroU32::new((per_second.get() / 10).max(piece))?;
    Some(RateLimiter::direct(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Pins: a limit paces what goes through it, and a change applies to the
    /// next piece of a running transfer.
    #[tokio::test]
    async fn a_limit_paces_and_follows_changes() {
        let t = Throttle::new(Rate(1 << 20), None);
        let started = Instant::now();
        for _ in 0..32 {
            t.take(PIECE).await;
        }
        // 2 MiB at 1 MiB/s, less the first burst (a tenth of a second, or a piece).
        let took = started.elapsed().as_secs_f64();
        assert!((1.7..3.0).contains(&took), "{took}");
        t.set(Rate::NONE, None);
        let started = Instant::now();
        for _ in 0..1000 {
            t.take(PIECE).await;
        }
        assert!(started.elapsed().as_secs_f64() < 0.2, "no limit, no wait");
    }

    #[tokio::test]
    async fn a_closed_window_does_not_limit() {
        let now = Local::now().time();
        let closed = Window {
            from: now + chrono::TimeDelta::hours(1),
            to: now + chrono::TimeDelta::hours(2),
        };
        let t = Throttle::new(Rate(1024), Some(closed));
        let started = Instant::now();
        for _ in 0..100 {
            t.take(PIECE).await;
        }
        assert!(started.elapsed().as_secs_f64() < 0.2);
    }
}
