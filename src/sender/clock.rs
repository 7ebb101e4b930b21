//! The scheduler's sense of time, injectable: wall time places cron slots, a
//! monotonic clock measures elapsed time, and tests step either one by hand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// A monotonic reading: time since an origin fixed for the clock's life. It
/// never goes back and does not move when the wall clock is stepped (NTP, a
/// fixed RTC, `date -s`). Signed, so "a year before the origin" is a reading
/// too, and every operation on it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mono(TimeDelta);

impl Mono {
    pub const fn from_origin(since: TimeDelta) -> Mono {
        Mono(since)
    }

    /// `self + by`, or the latest reading there is when that overflows.
    pub fn saturating_add(self, by: TimeDelta) -> Mono {
        Mono(self.0.checked_add(&by).unwrap_or(TimeDelta::MAX))
    }

    /// `self - by`, or the earliest reading there is when that overflows.
    pub fn saturating_sub(self, by: TimeDelta) -> Mono {
        Mono(self.0.checked_sub(&by).unwrap_or(TimeDelta::MIN))
    }

    /// `self - earlier`: negative when `earlier` is later; saturating.
    pub fn since(self, earlier: Mono) -> TimeDelta {
        self.0
            .checked_sub(&earlier.0)
            .unwrap_or(if earlier.0 > self.0 {
                TimeDelta::MIN
            } else {
                TimeDelta::MAX
            })
    }
}

/// Both clocks, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Wall time: where cron slots are, what history rows say.
    pub wall: DateTime<Utc>,
    /// Monotonic time: how much time has passed.
    pub mono: Mono,
}

impl Reading {
    /// Wall minus monotonic: constant while nobody steps the wall clock, so a
    /// change says by how much it was stepped (negative: back).
    pub fn frame(&self) -> TimeDelta {
        // Cannot overflow for chrono's dates and a boot clock's readings;
        // saturating keeps a hand-built reading from panicking.
        let wall = self.wall.signed_duration_since(DateTime::UNIX_EPOCH);
        wall.checked_sub(&self.mono.0).unwrap_or(TimeDelta::MIN)
    }

    /// Where the monotonic reading `at` falls on today's wall clock.
    pub fn wall_at(&self, at: Mono) -> DateTime<Utc> {
        let by = at.since(self.mono);
        self.wall
            .checked_add_signed(by)
            .unwrap_or(if by < TimeDelta::zero() {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            })
    }

    /// The monotonic reading at which the wall clock shows `at`, if nobody steps it.
    pub fn mono_at(&self, at: DateTime<Utc>) -> Mono {
        self.mono
            .saturating_add(at.signed_duration_since(self.wall))
    }
}

/// What the scheduler asks of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall time.
    fn now(&self) -> DateTime<Utc>;
    /// Monotonic time ([`Mono`]).
    fn monotonic(&self) -> Mono;
    /// Resolves once `monotonic() >= at` (may resolve late, never early).
    fn sleep_until(&self, at: Mono) -> Sleep;

    /// Both clocks at once.
    fn read(&self) -> Reading {
        Reading {
            wall: self.now(),
            mono: self.monotonic(),
        }
    }
}

/// What `sleep_until` returns.
pub type Sleep = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The system's clocks: `Utc::now()`, and `CLOCK_BOOTTIME` for elapsed time,
/// which unlike `CLOCK_MONOTONIC` keeps counting while the machine is
/// suspended, so a suspended appliance catches up as soon as it wakes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// The longest nap between looks at the clock: a suspend or a bug in a timer
/// costs at most this much lateness.
const NAP: Duration = Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn monotonic(&self) -> Mono {
        use nix::time::{clock_gettime, ClockId};
        let since_boot = clock_gettime(ClockId::CLOCK_BOOTTIME)
            .ok()
            .and_then(|t| TimeDelta::new(t.tv_sec(), u32::try_from(t.tv_nsec()).unwrap_or(0)));
        match since_boot {
            Some(t) => Mono(t),
            // No boot clock (not Linux, or a sandbox that hides it): the
            // process's monotonic clock, from its first reading.
            None => {
                static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
                let origin = ORIGIN.get_or_init(std::time::Instant::now);
                Mono(TimeDelta::from_std(origin.elapsed()).unwrap_or(TimeDelta::MAX))
            }
        }
    }

    fn sleep_until(&self, at: Mono) -> Sleep {
        let clock = *self;
        Box::pin(async move {
            loop {
                let left = at.since(clock.monotonic());
                if left <= TimeDelta::zero() {
                    return;
                }
                // tokio sleeps on CLOCK_MONOTONIC, which stands still while
                // suspended: nap, then look at the boot clock again.
                let nap = left.to_std().unwrap_or(NAP).min(NAP);
                tokio::time::sleep(nap).await;
            }
        })
    }
}

/// A clock that moves only when told to: [`ManualClock::advance`] lets time
/// pass, [`ManualClock::step`] sets the wall clock as NTP or `date -s` would.
/// Sleepers wake as soon as monotonic time passes their time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Reading>>,
    moved: watch::Sender<Mono>,
}

/// Where a manual clock's monotonic readings start: any value does.
const MANUAL_ORIGIN: Mono = Mono(TimeDelta::days(1000));

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(Reading {
                wall: start,
                mono: MANUAL_ORIGIN,
            })),
            moved: watch::Sender::new(MANUAL_ORIGIN),
        }
    }

    fn reading(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets `by` pass on both clocks, wakes whoever it passed, and returns the
    /// new wall time.
    pub fn advance(&self, by: TimeDelta) -> DateTime<Utc> {
        let mut now = self.reading();
        now.wall = now.wall.checked_add_signed(by).unwrap_or(now.wall);
        now.mono = now.mono.saturating_add(by);
        self.moved.send_replace(now.mono);
        now.wall
    }

    /// Steps the wall clock by `by` (negative: back) while no time passes, and
    /// returns the new wall time.
    pub fn step(&self, by: TimeDelta) -> DateTime<Utc> {
        let mut now = self.reading();
        now.wall = now.wall.checked_add_signed(by).unwrap_or(now.wall);
        self.moved.send_replace(now.mono);
        now.wall
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.reading().wall
    }

    fn monotonic(&self) -> Mono {
        self.reading().mono
    }

    fn sleep_until(&self, at: Mono) -> Sleep {
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
        let at = clock.monotonic().saturating_add(TimeDelta::minutes(5));
        let sleeper = tokio::spawn(clock.sleep_until(at));
        clock.advance(TimeDelta::minutes(4));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(TimeDelta::minutes(1));
        sleeper.await.expect("woke");
        assert_eq!(clock.now(), start + TimeDelta::minutes(5));
    }

    #[tokio::test]
    async fn stepping_the_wall_clock_moves_no_monotonic_time() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        let before = clock.read();
        let at = before.mono.saturating_add(TimeDelta::minutes(1));
        let sleeper = tokio::spawn(clock.sleep_until(at));
        clock.step(TimeDelta::hours(-2));
        clock.step(TimeDelta::hours(5));
        tokio::task::yield_now().await;
        assert!(
            !sleeper.is_finished(),
            "a wall step woke a monotonic sleeper"
        );
        let after = clock.read();
        assert_eq!(after.mono, before.mono);
        assert_eq!(after.wall, start + TimeDelta::hours(3));
        assert_eq!(after.frame() - before.frame(), TimeDelta::hours(3));
        clock.advance(TimeDelta::minutes(1));
        sleeper.await.expect("woke");
    }

    #[tokio::test]
    async fn the_system_clock_does_not_wake_early() {
        let clock = SystemClock;
        let at = clock
            .monotonic()
            .saturating_add(TimeDelta::milliseconds(30));
        clock.sleep_until(at).await;
        assert!(clock.monotonic() >= at);
    }

    #[test]
    fn readings_convert_between_the_clocks_without_overflow() {
        let r = Reading {
            wall: Utc::now(),
            mono: MANUAL_ORIGIN,
        };
        let later = r.mono.saturating_add(TimeDelta::minutes(3));
        assert_eq!(r.wall_at(later), r.wall + TimeDelta::minutes(3));
        assert_eq!(r.mono_at(r.wall + TimeDelta::minutes(3)), later);
        let far = Mono(TimeDelta::MAX);
        assert_eq!(r.wall_at(far), DateTime::<Utc>::MAX_UTC);
        assert_eq!(Mono(TimeDelta::MIN).since(far), TimeDelta::MIN);
        let _ = r.mono_at(DateTime::<Utc>::MIN_UTC);
    }
}
