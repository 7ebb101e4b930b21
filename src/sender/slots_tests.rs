//! The slot's rules on hand-moved clocks: schedules, backoff, clock steps.

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
        timezone: None,
        bwlimit: 0,
        preserve_source: "none".into(),
        preserve_target: "none".into(),
        skip_unchanged: false,
        hooks: crate::store::TaskHooks::default(),
        meta_port: None,
        data_port: None,
        keep_source: 3,
        keep_target: 5,
        snapshot_dir: PathBuf::from("/mnt/main/.ferry-snapshots/photos"),
        compress: 3,
        compress_auto: true,
        send_compressed: crate::store::SendCompressed::Auto,
        replica_name: None,
        enabled,
        created_at: now,
        updated_at: now,
    }
}

/// A clock reading the test moves: `pass` lets time go by, `step` sets the
/// wall clock only.
#[derive(Clone, Copy)]
struct At(Reading);

impl At {
    fn start() -> At {
        At::wall(Utc::now())
    }
    fn wall(wall: DateTime<Utc>) -> At {
        At(Reading {
            wall,
            mono: Mono::from_origin(TimeDelta::days(10)),
        })
    }
    fn pass(self, by: TimeDelta) -> At {
        At(Reading {
            wall: self.0.wall + by,
            mono: self.0.mono.saturating_add(by),
        })
    }
    fn step(self, by: TimeDelta) -> At {
        At(Reading {
            wall: self.0.wall + by,
            mono: self.0.mono,
        })
    }
}

fn new_slot(spec: &str, enabled: bool, now: At, last: Option<DateTime<Utc>>) -> Slot {
    let schedule = Schedule::parse_in(spec, spec.contains(' ').then_some("UTC")).expect("valid");
    Slot::new(task(enabled), schedule, now.0, last)
}

const BACKOFF: Backoff = Backoff {
    first: Duration::from_secs(60),
    max: Duration::from_secs(3600),
};

const TEMPORARY: Outcome = Outcome::Temporary { retry_after: None };

#[test]
fn a_task_never_run_is_due_at_once_then_every_period() {
    let t0 = At::start();
    let mut slot = new_slot("5m", true, t0, None);
    assert_eq!(slot.fire(t0.0), Some(Fire::Run));
    slot.running = true;
    assert_eq!(slot.fire(t0.pass(TimeDelta::minutes(4)).0), None);
    assert_eq!(
        slot.fire(t0.pass(TimeDelta::minutes(5)).0),
        Some(Fire::Skip)
    );
    slot.finished(
        t0.pass(TimeDelta::minutes(6)).0,
        Outcome::Succeeded,
        BACKOFF,
        0.0,
    );
    assert_eq!(
        slot.fire(t0.pass(TimeDelta::minutes(10)).0),
        Some(Fire::Run)
    );
}

#[test]
fn a_restart_counts_from_the_last_run() {
    let t0 = At::start();
    let slot = new_slot("5m", true, t0, Some(t0.0.wall - TimeDelta::minutes(2)));
    assert_eq!(slot.due_wall(t0.0), Some(t0.0.wall + TimeDelta::minutes(3)));
}

#[test]
fn disabled_tasks_never_fire() {
    let t0 = At::start();
    let mut slot = new_slot("5m", false, t0, None);
    assert_eq!(slot.wake_at(t0.0), None);
    assert_eq!(slot.fire(t0.pass(TimeDelta::days(1)).0), None);
}

#[test]
fn temporary_failures_back_off_permanent_ones_wait_for_the_schedule() {
    let t0 = At::start();
    let mut slot = new_slot("1h", true, t0, None);
    assert_eq!(slot.fire(t0.0), Some(Fire::Run));
    slot.running = true;
    slot.finished(t0.0, TEMPORARY, BACKOFF, 0.0);
    let t1 = t0.pass(TimeDelta::minutes(1));
    assert_eq!(slot.retry_at, Some(t1.0.mono));
    assert_eq!(slot.fire(t1.0), Some(Fire::Retry));
    slot.running = true;
    slot.finished(t1.0, TEMPORARY, BACKOFF, 0.0);
    assert_eq!(slot.retry_at, Some(t1.pass(TimeDelta::minutes(2)).0.mono));
    slot.finished(t1.0, Outcome::Permanent, BACKOFF, 0.0);
    assert_eq!(
        slot.retry_at, None,
        "a permanent failure is not retried early"
    );
    slot.finished(t1.0, Outcome::Succeeded, BACKOFF, 0.0);
    assert_eq!(slot.failures, 0);
}

#[test]
fn a_retry_never_comes_after_the_next_regular_run() {
    let t0 = At::start();
    let mut slot = new_slot("5m", true, t0, None);
    slot.fire(t0.0);
    slot.running = true;
    slot.failures = 5; // the next delay would be 32 minutes
    slot.finished(t0.0, TEMPORARY, BACKOFF, 0.0);
    assert_eq!(slot.retry_at, None);
    assert_eq!(
        slot.wake_at(t0.0),
        Some(t0.pass(TimeDelta::minutes(5)).0.mono)
    );
}

#[test]
fn retries_are_jittered_up_to_a_quarter_and_honour_the_targets_hint() {
    let t0 = At::start();
    let mut slot = new_slot("1d", true, t0, None);
    slot.fire(t0.0);
    let retry_in = |slot: &Slot| slot.retry_at.map(|at| at.since(t0.0.mono).num_seconds());
    slot.finished(t0.0, TEMPORARY, BACKOFF, 0.999);
    assert_eq!(retry_in(&slot), Some(74), "60 s plus up to a quarter");
    slot.failures = 0;
    let hint = Outcome::Temporary {
        retry_after: Some(Duration::from_secs(300)),
    };
    slot.finished(t0.0, hint, BACKOFF, 0.0);
    assert_eq!(retry_in(&slot), Some(300), "not before the hint");
    slot.failures = 0;
    let huge = Outcome::Temporary {
        retry_after: Some(Duration::MAX),
    };
    slot.finished(t0.0, huge, BACKOFF, f64::NAN);
    assert_eq!(retry_in(&slot), Some(3600), "a hint is capped by retry_max");
}

/// The case: a 60 s task, the clock stepped back 2 hours (or
/// forward) under the running scheduler. It runs a minute after the last
/// run, as if nothing happened, and only once.
#[test]
fn an_interval_neither_stalls_nor_runs_twice_when_the_clock_steps() {
    for step in [TimeDelta::hours(-2), TimeDelta::hours(2)] {
        let t0 = At::start();
        let mut slot = new_slot("60", true, t0, None);
        assert_eq!(slot.fire(t0.0), Some(Fire::Run));
        slot.finished(t0.0, Outcome::Succeeded, BACKOFF, 0.0);
        let stepped = t0.pass(TimeDelta::seconds(10)).step(step);
        assert_eq!(slot.fire(stepped.0), None, "{step}: ran at the step");
        assert_eq!(slot.fire(stepped.pass(TimeDelta::seconds(49)).0), None);
        assert_eq!(
            slot.fire(stepped.pass(TimeDelta::seconds(50)).0),
            Some(Fire::Run),
            "{step}: not a minute after the last run"
        );
    }
}

/// A daemon started with its clock behind the last run (2 h): the run counts
/// as now, so the task comes one interval later, not 2 h later.
#[test]
fn a_last_run_in_the_future_counts_as_now() {
    let t0 = At::start();
    let mut slot = new_slot("60", true, t0, Some(t0.0.wall + TimeDelta::hours(2)));
    assert_eq!(slot.fire(t0.pass(TimeDelta::seconds(59)).0), None);
    assert_eq!(
        slot.fire(t0.pass(TimeDelta::seconds(60)).0),
        Some(Fire::Run)
    );
}

#[test]
fn a_cron_schedule_follows_wall_steps_without_replaying_a_slot() {
    // Every minute, stepped back 7 minutes right after a run: the next minute.
    let t0 = At::wall(
        DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z")
            .expect("valid")
            .to_utc(),
    );
    let mut slot = new_slot("*/1 * * * *", true, t0, None);
    assert_eq!(slot.fire(t0.pass(TimeDelta::minutes(1)).0), Some(Fire::Run));
    let back = t0.pass(TimeDelta::seconds(90)).step(TimeDelta::minutes(-7));
    assert_eq!(slot.fire(back.0), None);
    assert_eq!(slot.fire(back.pass(TimeDelta::seconds(29)).0), None);
    assert_eq!(
        slot.fire(back.pass(TimeDelta::seconds(30)).0),
        Some(Fire::Run),
        "stalled for the step"
    );

    // Daily at 03:00, run, then the clock says 02:00 again: not again today.
    let day = DateTime::parse_from_rfc3339("2026-05-01T02:59:00Z")
        .expect("valid")
        .to_utc();
    let t0 = At::wall(day);
    let mut slot = new_slot("0 3 * * *", true, t0, None);
    let ran = t0.pass(TimeDelta::minutes(1));
    assert_eq!(slot.fire(ran.0), Some(Fire::Run));
    let back = ran.pass(TimeDelta::hours(1)).step(TimeDelta::hours(-2));
    assert_eq!(slot.fire(back.0), None);
    assert_eq!(
        slot.fire(back.pass(TimeDelta::hours(1)).0),
        None,
        "03:00 replayed"
    );
    // Another day: run at 03:00, then 23 hours pass and the clock is
    // stepped 2 hours forward, over the next 03:00: due at once, once.
    let t0 = At::wall(day);
    let mut slot = new_slot("0 3 * * *", true, t0, None);
    let ran = t0.pass(TimeDelta::minutes(1));
    assert_eq!(slot.fire(ran.0), Some(Fire::Run));
    let fwd = ran.pass(TimeDelta::hours(23)).step(TimeDelta::hours(2));
    assert_eq!(slot.fire(fwd.0), Some(Fire::Run));
    assert_eq!(slot.fire(fwd.pass(TimeDelta::minutes(1)).0), None);
}

/// Minute by minute through both DST nights of 2026 in Berlin, as the
/// scheduler's loop sees them: a daily 02:30 job runs once each night, and
/// a half-hourly job every 30 minutes of real time.
#[test]
fn dst_transitions_neither_skip_nor_double_a_run_on_the_clock() {
    for night in ["2026-03-28T22:00:00Z", "2026-10-24T22:00:00Z"] {
        let start = At::wall(DateTime::parse_from_rfc3339(night).expect("valid").to_utc());
        let berlin = |spec| {
            let schedule = Schedule::parse_in(spec, Some("Europe/Berlin")).expect("valid");
            Slot::new(task(true), schedule, start.0, None)
        };
        let (mut daily, mut half) = (berlin("30 2 * * *"), berlin("*/30 * * * *"));
        let (mut daily_runs, mut half_runs) = (Vec::new(), Vec::new());
        for minute in 0..(6 * 60) {
            let now = start.pass(TimeDelta::minutes(minute));
            if daily.fire(now.0) == Some(Fire::Run) {
                daily_runs.push(now.0.wall);
            }
            if half.fire(now.0) == Some(Fire::Run) {
                half_runs.push(now.0.wall);
            }
        }
        assert_eq!(daily_runs.len(), 1, "{night}: {daily_runs:?}");
        let gaps: Vec<i64> = half_runs
            .windows(2)
            .map(|w| (w[1] - w[0]).num_minutes())
            .collect();
        // 22:30 to 03:30 UTC: the start itself is not a slot yet.
        assert_eq!(half_runs.len(), 11, "{night}: {half_runs:?}");
        assert!(gaps.iter().all(|g| *g == 30), "{night}: {half_runs:?}");
    }
}
