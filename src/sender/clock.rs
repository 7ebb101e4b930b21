//! The scheduler's sense of time, injectable: the system clock in production, a
//! clock tests move by hand so a 5-minute schedule fires without waiting 5 minutes.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// What the scheduler asks of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= at` (may resolve late, never early).
    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep;
}

/// What `sleep_until` returns.
pub type Sleep = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Wall-clock time. Sleeps re-check the wall clock, so a clock step (NTP, a
/// suspended VM) delays or hastens a run but never skips one.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep {
        Box::pin(async move {
            loop {
                let left = at - Utc::now();
                if left <= TimeDelta::zero() {
                    return;
                }
                // Wake at least every minute to notice clock steps.
                let nap = left
                    .to_std()
                    .unwrap_or_default()
                    .min(std::time::Duration::from_secs(60));
                tokio::time::sleep(nap).await;
            }
        })
    }
}

/// A clock that moves only when told to. Sleepers wake as soon as it passes
/// their time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    moved: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
            moved: watch::Sender::new(start),
        }
    }

    /// Moves time forward by `by` and wakes whoever it passed.
    pub fn advance(&self, by: TimeDelta) -> DateTime<Utc> {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
        self.moved.send_replace(*now);
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep {
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            while *moved.borrow_and_update() < at {
                if moved.changed().await.is_err() {
                    // The clock is gone: it will never get there.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_it_passes() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        let sleeper = tokio::spawn(clock.sleep_until(start + TimeDelta::minutes(5)));
        clock.advance(TimeDelta::minutes(4));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(TimeDelta::minutes(1));
        sleeper.await.expect("woke");
        assert_eq!(clock.now(), start + TimeDelta::minutes(5));
    }

    #[tokio::test]
    async fn the_system_clock_does_not_wake_early() {
        let at = Utc::now() + TimeDelta::milliseconds(30);
        SystemClock.sleep_until(at).await;
        assert!(Utc::now() >= at);
    }
}
