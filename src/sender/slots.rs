//! Per-task scheduling state for the daemon: when each task is due, whether it
//! is running, and when a failed run is retried. Pure logic over a clock reading.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::schedule::Schedule;
use crate::store::Task;

/// How failed runs back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// One enabled or disabled task as the scheduler tracks it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub task: Task,
    pub schedule: Schedule,
    /// The next regular firing.
    pub due: Option<DateTime<Utc>>,
    /// A retry after a failure, when it comes before the next regular firing.
    pub retry_at: Option<DateTime<Utc>>,
    /// Queued or running: a firing now is recorded as skipped.
    pub running: bool,
    /// Failed runs in a row (reset by a success).
    pub failures: u32,
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
    /// A slot for `task`, due from `last_run` (the newest send attempt).
    pub fn new(
        task: Task,
        schedule: Schedule,
        now: DateTime<Utc>,
        last_run: Option<DateTime<Utc>>,
    ) -> Slot {
        let mut slot = Slot {
            task,
            schedule,
            due: None,
            retry_at: None,
            running: false,
            failures: 0,
        };
        slot.reschedule(now, last_run);
        slot
    }

    /// Recomputes the next firing, for a new slot or an edited task.
    pub fn reschedule(&mut self, now: DateTime<Utc>, last_run: Option<DateTime<Utc>>) {
        self.due = if self.task.enabled {
            self.schedule.next_due(now, last_run)
        } else {
            None
        };
        if !self.task.enabled {
            self.retry_at = None;
        }
    }

    /// What to do at `now`, and advances the slot past it.
    pub fn fire(&mut self, now: DateTime<Utc>) -> Option<Fire> {
        if self.due.is_some_and(|due| due <= now) {
            self.due = self.schedule.next_due(now, Some(now));
            self.retry_at = None;
            return Some(if self.running { Fire::Skip } else { Fire::Run });
        }
        if !self.running && self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            return Some(Fire::Retry);
        }
        None
    }

    /// The earliest time this slot needs the scheduler's attention.
    pub fn wake_at(&self) -> Option<DateTime<Utc>> {
        match (self.due, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records a finished run. A temporary failure is retried after a delay that
    /// doubles with each failure in a row, but only when the retry comes before
    /// the next regular firing (which is a retry too).
    pub fn finished(&mut self, now: DateTime<Utc>, outcome: Result<(), bool>, backoff: Backoff) {
        self.running = false;
        match outcome {
            Ok(()) => {
                self.failures = 0;
                self.retry_at = None;
            }
            Err(temporary) => {
                self.failures = self.failures.saturating_add(1);
                self.retry_at = None;
                if temporary && self.task.enabled {
                    let at = now + delay(backoff, self.failures);
                    if self.due.is_none_or(|due| at < due) {
                        self.retry_at = Some(at);
                    }
                }
            }
        }
    }
}

fn delay(backoff: Backoff, failures: u32) -> TimeDelta {
    let doublings = failures.saturating_sub(1).min(20);
    let d = backoff
        .first
        .saturating_mul(1 << doublings)
        .min(backoff.max.max(backoff.first));
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn task(enabled: bool) -> Task {
        let now = Utc::now();
        Task {
            id: 1,
            name: "photos".into(),
            share: PathBuf::from("/mnt/main/photos"),
            target_id: 1,
            target: "nas2".into(),
            pool: "backup".into(),
            frequency: "300".into(),
            meta_port: None,
            data_port: None,
            keep_source: 3,
            keep_target: 5,
            snapshot_dir: PathBuf::from("/mnt/main/.ferry-snapshots/photos"),
            compress: 3,
            compress_auto: true,
            enabled,
            created_at: now,
            updated_at: now,
        }
    }

    fn every_5m(enabled: bool, now: DateTime<Utc>, last: Option<DateTime<Utc>>) -> Slot {
        Slot::new(
            task(enabled),
            Schedule::parse("5m").expect("valid"),
            now,
            last,
        )
    }

    const BACKOFF: Backoff = Backoff {
        first: Duration::from_secs(60),
        max: Duration::from_secs(3600),
    };

    #[test]
    fn a_task_never_run_is_due_at_once_then_every_period() {
        let t0 = Utc::now();
        let mut slot = every_5m(true, t0, None);
        assert_eq!(slot.fire(t0), Some(Fire::Run));
        slot.running = true;
        assert_eq!(slot.fire(t0 + TimeDelta::minutes(4)), None);
        assert_eq!(slot.fire(t0 + TimeDelta::minutes(5)), Some(Fire::Skip));
        slot.finished(t0 + TimeDelta::minutes(6), Ok(()), BACKOFF);
        assert_eq!(slot.fire(t0 + TimeDelta::minutes(10)), Some(Fire::Run));
    }

    #[test]
    fn a_restart_counts_from_the_last_run() {
        let t0 = Utc::now();
        let slot = every_5m(true, t0, Some(t0 - TimeDelta::minutes(2)));
        assert_eq!(slot.due, Some(t0 + TimeDelta::minutes(3)));
    }

    #[test]
    fn disabled_tasks_never_fire() {
        let t0 = Utc::now();
        let mut slot = every_5m(false, t0, None);
        assert_eq!(slot.wake_at(), None);
        assert_eq!(slot.fire(t0 + TimeDelta::days(1)), None);
    }

    #[test]
    fn temporary_failures_back_off_permanent_ones_wait_for_the_schedule() {
        let t0 = Utc::now();
        let mut slot = Slot::new(task(true), Schedule::parse("1h").expect("valid"), t0, None);
        assert_eq!(slot.fire(t0), Some(Fire::Run));
        slot.running = true;
        slot.finished(t0, Err(true), BACKOFF);
        assert_eq!(slot.retry_at, Some(t0 + TimeDelta::minutes(1)));
        assert_eq!(slot.fire(t0 + TimeDelta::minutes(1)), Some(Fire::Retry));
        slot.running = true;
        let t1 = t0 + TimeDelta::minutes(1);
        slot.finished(t1, Err(true), BACKOFF);
        assert_eq!(slot.retry_at, Some(t1 + TimeDelta::minutes(2)));
        slot.finished(t1, Err(false), BACKOFF);
        assert_eq!(
            slot.retry_at, None,
            "a permanent failure is not retried early"
        );
        slot.finished(t1, Ok(()), BACKOFF);
        assert_eq!(slot.failures, 0);
    }

    #[test]
    fn a_retry_never_comes_after_the_next_regular_run() {
        let t0 = Utc::now();
        let mut slot = every_5m(true, t0, None);
        slot.fire(t0);
        slot.running = true;
        slot.failures = 5; // the next delay would be 32 minutes
        slot.finished(t0, Err(true), BACKOFF);
        assert_eq!(slot.retry_at, None);
        assert_eq!(slot.wake_at(), Some(t0 + TimeDelta::minutes(5)));
    }
}
