//! Per-task scheduling state for the daemon: when each task is due, whether it
//! is running, and when a failed run is retried. Pure logic over clock readings.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::clock::{Mono, Reading};
use crate::schedule::{Schedule, MAX_INTERVAL};
use crate::store::Task;

/// A change of wall minus monotonic time larger than this is a clock step.
/// NTP slews both clocks alike, so only a step moves them apart at all.
const STEP: TimeDelta = TimeDelta::seconds(1);

/// How failed runs back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// How a run ended, as the schedule needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Retried with backoff; `retry_after` is the target's hint, if it gave one.
    Temporary {
        retry_after: Option<Duration>,
    },
    /// Waits for the next regular run.
    Permanent,
}

/// When a task is next due: intervals count monotonic time, cron slots are
/// wall-clock times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    After(Mono),
    Slot(DateTime<Utc>),
}

/// The start of the last run, on the monotonic clock, and (cron) the period
/// after the slot it was for: what a clock step back must not replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Last {
    mono: Mono,
    period: Option<TimeDelta>,
}

/// One enabled or disabled task as the scheduler tracks it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub task: Task,
    pub schedule: Schedule,
    due: Option<Due>,
    /// A retry after a failure, when it comes before the next regular firing.
    pub retry_at: Option<Mono>,
    /// Queued or running: a firing now is recorded as skipped.
    pub running: bool,
    /// Failed runs in a row (reset by a success).
    pub failures: u32,
    /// The last success, on the monotonic clock: who waited longest goes first.
    pub succeeded: Option<Mono>,
    last: Option<Last>,
    /// `Reading::frame` when this slot last looked at the clock.
    frame: TimeDelta,
}

/// What a slot wants at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    Run,
    Retry,
    /// Due, but the previous run is still going.
    Skip,
}

impl Slot {
    /// A slot for `task`, due from `last_run` (the newest send attempt's start,
    /// in wall time, from history).
    pub fn new(
        task: Task,
        schedule: Schedule,
        now: Reading,
        last_run: Option<DateTime<Utc>>,
    ) -> Slot {
        let mut slot = Slot {
            task,
            schedule,
            due: None,
            retry_at: None,
            running: false,
            failures: 0,
            succeeded: None,
            last: None,
            frame: now.frame(),
        };
        slot.reschedule(now, last_run);
        slot
    }

    /// Recomputes the next firing, for a new slot or an edited task. A last
    /// run this slot saw itself is measured on the monotonic clock; one only
    /// history knows of counts from its wall time, and as now if that is in
    /// the future (the clock stepped back since).
    pub fn reschedule(&mut self, now: Reading, last_run: Option<DateTime<Utc>>) {
        self.frame = now.frame();
        if !self.task.enabled {
            self.due = None;
            self.retry_at = None;
            return;
        }
        if self.last.is_none() {
            self.last = last_run.map(|wall| {
                // Longer ago than any interval is as good as "long ago".
                let cap = TimeDelta::from_std(MAX_INTERVAL).unwrap_or(TimeDelta::MAX);
                let ago = now
                    .wall
                    .signed_duration_since(wall)
                    .clamp(TimeDelta::zero(), cap);
                Last {
                    mono: now.mono.saturating_sub(ago),
                    period: self.schedule.period_after(wall),
                }
            });
        }
        self.due = self.regular(now);
    }

    /// The next regular firing after the last run, as seen at `now`.
    fn regular(&self, now: Reading) -> Option<Due> {
        match (&self.schedule, self.last) {
            (Schedule::Every(_), None) => Some(Due::After(now.mono)),
            (Schedule::Every(every), Some(last)) => {
                let every = TimeDelta::from_std(*every).ok()?;
                Some(Due::After(last.mono.saturating_add(every)))
            }
            (Schedule::Cron { .. }, None) => self.schedule.next_slot(now.wall).map(Due::Slot),
            (Schedule::Cron { .. }, Some(last)) => self
                .schedule
                .next_due_since(now.wall, now.wall_at(last.mono), last.period)
                .map(Due::Slot),
        }
    }

    /// A wall clock stepped back leaves a cron slot that far in the future:
    /// the slot is found again, no earlier than a period after the last run.
    /// Stepped forward, a slot passed over is simply due. Intervals count
    /// monotonic time, which no step moves.
    fn notice_steps(&mut self, now: Reading) {
        let frame = now.frame();
        let back = frame < self.frame.checked_sub(&STEP).unwrap_or(TimeDelta::MIN);
        self.frame = frame;
        if back && matches!(self.due, Some(Due::Slot(_))) {
            self.due = self.regular(now);
        }
    }

    fn reached(due: Option<Due>, now: Reading) -> bool {
        match due {
            Some(Due::After(at)) => now.mono >= at,
            Some(Due::Slot(at)) => now.wall >= at,
            None => false,
        }
    }

    /// What to do at `now`, and advances the slot past it.
    pub fn fire(&mut self, now: Reading) -> Option<Fire> {
        self.notice_steps(now);
        if Self::reached(self.due, now) {
            let fired = self.due;
            self.retry_at = None;
            let skip = self.running;
            self.last = Some(match fired {
                // A cron run counts from its slot, so a late start does not
                // push the guard against replays past the next slot.
                Some(Due::Slot(slot)) => Last {
                    mono: now.mono.saturating_sub(
                        now.wall.signed_duration_since(slot).max(TimeDelta::zero()),
                    ),
                    period: self.schedule.period_after(slot),
                },
                // A tick during a run: the running one stays the last run.
                _ if skip => self.last.unwrap_or(Last {
                    mono: now.mono,
                    period: None,
                }),
                _ => Last {
                    mono: now.mono,
                    period: None,
                },
            });
            self.due = match self.schedule {
                // Missed slots are not caught up: the next one after now.
                Schedule::Cron { .. } => self.schedule.next_slot(now.wall).map(Due::Slot),
                Schedule::Every(every) => TimeDelta::from_std(every)
                    .ok()
                    .map(|e| Due::After(now.mono.saturating_add(e))),
            };
            return Some(if skip { Fire::Skip } else { Fire::Run });
        }
        if !self.running && self.retry_at.is_some_and(|at| at <= now.mono) {
            self.retry_at = None;
            return Some(Fire::Retry);
        }
        None
    }

    /// The next regular firing on the monotonic clock, as far as `now` knows.
    fn due_mono(&self, now: Reading) -> Option<Mono> {
        match self.due? {
            Due::After(at) => Some(at),
            Due::Slot(at) => Some(now.mono_at(at)),
        }
    }

    /// The next regular firing on the wall clock.
    #[cfg(test)]
    pub fn due_wall(&self, now: Reading) -> Option<DateTime<Utc>> {
        match self.due? {
            Due::After(at) => Some(now.wall_at(at)),
            Due::Slot(at) => Some(at),
        }
    }

    /// The earliest time this slot needs the scheduler's attention.
    pub fn wake_at(&self, now: Reading) -> Option<Mono> {
        match (self.due_mono(now), self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records a finished run. A temporary failure is retried after a delay
    /// that doubles with each failure in a row, is at least the target's
    /// `retry_after` hint, and is stretched by `jitter` (0 to 1: up to a
    /// quarter more), so runs refused together do not return together. The
    /// retry is kept only when it comes before the next regular firing, which
    /// is a retry too.
    pub fn finished(&mut self, now: Reading, outcome: Outcome, backoff: Backoff, jitter: f64) {
        self.running = false;
        self.retry_at = None;
        match outcome {
            Outcome::Succeeded => {
                self.failures = 0;
                self.succeeded = Some(now.mono);
            }
            Outcome::Permanent => self.failures = self.failures.saturating_add(1),
            Outcome::Temporary { retry_after } => {
                self.failures = self.failures.saturating_add(1);
                if self.task.enabled {
                    let at =
                        now.mono
                            .saturating_add(delay(backoff, self.failures, retry_after, jitter));
                    if self.due_mono(now).is_none_or(|due| at < due) {
                        self.retry_at = Some(at);
                    }
                }
            }
        }
    }
}

/// The wait before retry number `failures`: `first` doubled per earlier
/// failure, at least `hint`, at most `max`, plus up to a quarter of itself.
fn delay(backoff: Backoff, failures: u32, hint: Option<Duration>, jitter: f64) -> TimeDelta {
    let doublings = failures.saturating_sub(1).min(20);
    let base = backoff
        .first
        .saturating_mul(1 << doublings)
        .max(hint.unwrap_or_default())
        .min(backoff.max.max(backoff.first));
    let share = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0) / 4.0
    } else {
        0.0
    };
    let extra = Duration::try_from_secs_f64(base.as_secs_f64() * share).unwrap_or_default();
    TimeDelta::from_std(base.saturating_add(extra)).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
