//! How each task and each held replica line stands now, read from the state
//! database: the one source of `ferry status`, `status --check` and the metrics.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::names;
use crate::schedule::Schedule;
use crate::store::{self, Expected, Replica, SendFilter, SendRow, Status, Store, Task};

/// History rows read per task to find its last success and failure streak; a
/// longer streak counts as this many.
pub const RECENT: u32 = 200;

/// Cron fires looked at to find a cron schedule's longest gap (a week of hourly
/// fires; a weekday schedule's weekend gap falls within it).
const CRON_FIRES: usize = 24 * 7 + 1;

/// One task as the status, the check and the metrics see it.
#[derive(Debug, Clone)]
pub struct TaskHealth {
    pub task: Task,
    /// `None` when the stored frequency no longer parses (the scheduler skips it).
    pub schedule: Option<Schedule>,
    /// How often the task runs: the interval, or a cron schedule's longest gap
    /// between two fires.
    pub interval: Option<Duration>,
    /// When the newest snapshot a target confirmed was taken (from its name).
    pub last_success: Option<DateTime<Utc>>,
    /// The last time the replica was known to equal the share: `last_success`,
    /// or a later run that found the share unchanged since the snapshot the
    /// target holds (skip-unchanged).
    pub current_at: Option<DateTime<Utc>>,
    /// `now - current_at`, in seconds: the recovery point's age. Negative
    /// when the clock went back.
    pub lag_seconds: Option<i64>,
    /// The next regular run (a retry may come earlier); `None` when disabled.
    pub next_run: Option<DateTime<Utc>>,
    /// Failed runs since the last success, skipped and running rows aside.
    pub failures_in_a_row: u32,
    /// The newest failure's reason, while the streak lasts.
    pub last_error: Option<String>,
    /// What the newest finished run warned about (nested subvolumes left
    /// out, bases skipped); empty when nothing.
    pub warnings: Vec<String>,
    /// The run in progress, if any.
    pub in_flight: Option<SendRow>,
    /// What the run in progress expects its stream to come to, when it has a
    /// basis (see `store::Expected`).
    pub expected: Option<Expected>,
}

impl TaskHealth {
    /// How long a lag is tolerable by default: twice the interval plus 10 minutes.
    pub fn lag_limit(&self) -> Option<Duration> {
        self.interval?
            .checked_mul(2)?
            .checked_add(Duration::from_secs(600))
    }
}

/// Every task, by name.
///
/// # Errors
///
/// The state database failed.
pub fn tasks(store: &Store, now: DateTime<Utc>) -> store::Result<Vec<TaskHealth>> {
    store
        .tasks()?
        .into_iter()
        .map(|t| task(store, t, now))
        .collect()
}

/// How `task` stands at `now`, from its newest [`RECENT`] history rows.
///
/// # Errors
///
/// The state database failed.
pub fn task(store: &Store, task: Task, now: DateTime<Utc>) -> store::Result<TaskHealth> {
    let rows = store.send_history(&SendFilter {
        task: Some(&task.name),
        limit: Some(RECENT),
    })?;
    let mut health = from_rows(task, &rows, now);
    if let Some(running) = &health.in_flight {
        health.expected = store.send_expected(running.id)?;
    }
    Ok(health)
}

/// The pure part of [`task`]: `rows` are the task's history, newest first
/// (`expected` is left for [`task`] to read).
pub fn from_rows(task: Task, rows: &[SendRow], now: DateTime<Utc>) -> TaskHealth {
    let last_success = rows
        .iter()
        .find(|r| r.attempt.status == Status::Succeeded)
        .and_then(|r| r.attempt.snapshot.as_deref())
        .and_then(names::snapshot_taken);
    // A run that found the share unchanged proved the replica current then.
    let unchanged = rows
        .iter()
        .find(|r| r.unchanged)
        .map(|r| r.attempt.started_at);
    let current_at = last_success.max(unchanged);
    // Runs that found the share unchanged count as attempts, and end a
    // failure streak like a success; ticks skipped during a run do not.
    let attempts = || {
        rows.iter()
            .filter(|r| r.attempt.status != Status::Skipped || r.unchanged)
    };
    let failures: Vec<&SendRow> = attempts()
        .filter(|r| r.attempt.status != Status::Running)
        .take_while(|r| r.attempt.status == Status::Failed)
        .collect();
    let schedule = Schedule::parse_in(&task.frequency, task.timezone.as_deref()).ok();
    let last_started = attempts().next().map(|r| r.attempt.started_at);
    let next_run = task
        .enabled
        .then(|| {
            schedule
                .as_ref()
                .and_then(|s| s.next_due(now, last_started))
        })
        .flatten();
    TaskHealth {
        interval: schedule.as_ref().and_then(|s| interval(s, now)),
        schedule,
        last_success,
        current_at,
        lag_seconds: current_at.map(|t| (now - t).num_seconds()),
        next_run,
        failures_in_a_row: u32::try_from(failures.len()).unwrap_or(u32::MAX),
        last_error: failures.first().and_then(|r| r.attempt.error.clone()),
        // From the newest run that got as far as sending: a skip of an
        // unchanged share looks at nothing the warnings are about.
        warnings: attempts()
            .find(|r| matches!(r.attempt.status, Status::Succeeded | Status::Failed))
            .map(|r| r.warnings.clone())
            .unwrap_or_default(),
        in_flight: rows
            .iter()
            .find(|r| r.attempt.status == Status::Running)
            .cloned(),
        expected: None,
        task,
    }
}

/// How often `schedule` fires: its interval, or for cron the longest gap
/// between consecutive fires over the next [`CRON_FIRES`] fires.
pub fn interval(schedule: &Schedule, now: DateTime<Utc>) -> Option<Duration> {
    match schedule {
        Schedule::Every(every) => Some(*every),
        Schedule::Cron { .. } => {
            let mut at = schedule.next_slot(now)?;
            let mut longest = TimeDelta::zero();
            for _ in 1..CRON_FIRES {
                let Some(next) = schedule.next_slot(at) else {
                    break;
                };
                longest = longest.max(next - at);
                at = next;
            }
            longest.to_std().ok().filter(|d| !d.is_zero())
        }
    }
}

/// A line of replicas this appliance holds: one (pool, source, share).
#[derive(Debug, Clone)]
pub struct ReplicaLine {
    /// The newest replica (last committed).
    pub newest: Replica,
    /// Replicas kept of this line.
    pub count: u32,
    /// `now - newest.received_at`, in seconds.
    pub age_seconds: i64,
    /// The time between the two newest replicas' arrivals: how often this line
    /// is fed. `None` with a single replica.
    pub interval: Option<Duration>,
}

impl ReplicaLine {
    /// How old the newest replica may grow by default: twice the line's
    /// interval plus 10 minutes, as for a task's lag.
    pub fn age_limit(&self) -> Option<Duration> {
        self.interval?
            .checked_mul(2)?
            .checked_add(Duration::from_secs(600))
    }
}

/// Every replica line, by source, share and pool.
///
/// # Errors
///
/// The state database failed.
pub fn replica_lines(store: &Store, now: DateTime<Utc>) -> store::Result<Vec<ReplicaLine>> {
    store
        .newest_replicas()?
        .into_iter()
        .map(|(newest, count)| {
            let line = store.replicas(&newest.pool, newest.source_uuid, &newest.share)?;
            let interval = match line.as_slice() {
                [a, b, ..] => (a.received_at - b.received_at).to_std().ok(),
                _ => None,
            };
            Ok(ReplicaLine {
                age_seconds: (now - newest.received_at).num_seconds(),
                newest,
                count,
                interval,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn a_cron_schedules_interval_is_its_longest_gap() {
        let now = at("2026-11-18T12:00:00Z"); // a Wednesday
        let every = Schedule::parse("15m").expect("15m");
        assert_eq!(interval(&every, now), Some(Duration::from_secs(900)));
        let quarter = Schedule::parse("*/15 * * * *").expect("cron");
        assert_eq!(interval(&quarter, now), Some(Duration::from_secs(900)));
        // Weekdays at 02:00: the weekend makes the longest gap three days.
        let weekdays = Schedule::parse("0 2 * * 1-5").expect("cron");
        assert_eq!(
            interval(&weekdays, now),
            Some(Duration::from_secs(3 * 86400))
        );
    }
}
