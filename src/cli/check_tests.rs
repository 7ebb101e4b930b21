use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::*;
use crate::health::{self, ReplicaLine};
use crate::store::{Attempt, Replica, SendRow, Status, Task};

fn now() -> DateTime<Utc> {
    "2026-11-21T12:00:00Z".parse().expect("time")
}

fn task(name: &str, frequency: &str) -> Task {
    Task {
        id: 1,
        name: name.into(),
        share: PathBuf::from("/mnt/main/photos"),
        target_id: 1,
        target: "nas2".into(),
        pool: "backup".into(),
        frequency: frequency.into(),
        timezone: None,
        bwlimit: 0,
        preserve_source: "none".into(),
        preserve_target: "none".into(),
        skip_unchanged: true,
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
        enabled: true,
        created_at: now() - TimeDelta::days(30),
        updated_at: now() - TimeDelta::days(30),
    }
}

fn row(task: &str, status: Status, ago: TimeDelta, error: Option<&str>) -> SendRow {
    let at = now() - ago;
    SendRow {
        id: 0,
        task: task.into(),
        target: "nas2".into(),
        share: "photos".into(),
        attempt: Attempt {
            snapshot: Some(crate::names::snapshot_name("photos", task, at)),
            parent: None,
            kind: None,
            status,
            error: error.map(str::to_owned),
            started_at: at,
            ended_at: Some(at),
            stream_bytes: 0,
            wire_bytes: 0,
            received_uuid: None,
            resumed_from: 0,
            stream_version: None,
        },
        unchanged: false,
        warnings: Vec::new(),
    }
}

const DEFAULTS: Limits = Limits {
    max_lag: None,
    warn_failures: 1,
};

#[test]
fn a_task_within_its_lag_and_without_failures_is_ok() {
    let t = health::from_rows(
        task("photos", "3600"),
        &[row(
            "photos",
            Status::Succeeded,
            TimeDelta::minutes(20),
            None,
        )],
        now(),
    );
    let r = evaluate(&[t], &[], DEFAULTS, now());
    assert_eq!(r.state, State::Ok, "{}", r.text);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(
        lines[0],
        "FERRY OK - 1 enabled task(s) within their lag, 0 replica line(s) fresh"
    );
    assert_eq!(
        lines[1],
        "| 'photos lag'=1200s;;7800;0; 'photos failures'=0;1;;0;"
    );
}

#[test]
fn lag_over_twice_the_interval_plus_ten_minutes_is_critical() {
    let rows = [row(
        "photos",
        Status::Succeeded,
        TimeDelta::minutes(192),
        None,
    )];
    let t = health::from_rows(task("photos", "3600"), &rows, now());
    let r = evaluate(std::slice::from_ref(&t), &[], DEFAULTS, now());
    assert_eq!(r.state, State::Critical);
    assert!(
        r.text
            .starts_with("FERRY CRITICAL - photos lag 3h12m > 2h10m\n"),
        "{}",
        r.text
    );
    // --max-lag replaces the default.
    let limits = Limits {
        max_lag: Some(Duration::from_secs(4 * 3600)),
        ..DEFAULTS
    };
    assert_eq!(evaluate(&[t], &[], limits, now()).state, State::Ok);
}

#[test]
fn a_failure_streak_is_a_warning_naming_the_last_error() {
    let rows = [
        row(
            "photos",
            Status::Failed,
            TimeDelta::minutes(5),
            Some("nas2 unreachable"),
        ),
        row(
            "photos",
            Status::Skipped,
            TimeDelta::minutes(6),
            Some("busy"),
        ),
        row(
            "photos",
            Status::Failed,
            TimeDelta::minutes(10),
            Some("older"),
        ),
        row("photos", Status::Succeeded, TimeDelta::minutes(20), None),
    ];
    let t = health::from_rows(task("photos", "3600"), &rows, now());
    let r = evaluate(std::slice::from_ref(&t), &[], DEFAULTS, now());
    assert_eq!(r.state, State::Warning, "{}", r.text);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines[0], "FERRY WARNING - photos failed 2 time(s) in a row");
    assert_eq!(
        lines[1],
        "WARNING: photos failed 2 time(s) in a row: nas2 unreachable"
    );
    let lenient = Limits {
        warn_failures: 3,
        ..DEFAULTS
    };
    assert_eq!(evaluate(&[t], &[], lenient, now()).state, State::Ok);
}

#[test]
fn never_succeeded_counts_from_when_the_task_was_added_and_disabled_tasks_are_ignored() {
    let mut fresh = task("fresh", "3600");
    fresh.created_at = now() - TimeDelta::minutes(30);
    let old = task("old", "3600");
    let mut off = task("off", "3600");
    off.enabled = false;
    let all: Vec<_> = [fresh, old, off]
        .into_iter()
        .map(|t| health::from_rows(t, &[], now()))
        .collect();
    let r = evaluate(&all, &[], DEFAULTS, now());
    assert_eq!(r.state, State::Critical, "{}", r.text);
    assert!(
        r.text.starts_with("FERRY CRITICAL - old lag 30d > 2h10m\n"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("fresh lag"), "{}", r.text);
    assert!(!r.text.contains("off"), "{}", r.text);
}

fn line(age: TimeDelta, interval: Option<Duration>) -> ReplicaLine {
    ReplicaLine {
        newest: Replica {
            id: 1,
            pool: "backup".into(),
            source: "nas1".into(),
            source_uuid: Uuid::nil(),
            share: "photos".into(),
            snapshot: "photos_photos_20261121T100000Z".into(),
            received_uuid: Uuid::nil(),
            stream_bytes: 1,
            received_at: now() - age,
            created_at: None,
            ctransid: None,
        },
        count: 2,
        age_seconds: age.num_seconds(),
        interval,
    }
}

#[test]
fn receiver_lines_are_checked_against_max_lag_or_their_own_rhythm() {
    let hourly = Some(Duration::from_secs(3600));
    let stale = line(TimeDelta::hours(3), hourly);
    let r = evaluate(&[], &[stale], DEFAULTS, now());
    assert_eq!(r.state, State::Critical, "{}", r.text);
    assert!(
        r.text
            .starts_with("FERRY CRITICAL - nas1/photos@backup newest replica 3h old > 2h10m\n"),
        "{}",
        r.text
    );
    // One replica: no rhythm yet, so only --max-lag can judge it.
    let single = line(TimeDelta::hours(3), None);
    let r = evaluate(&[], std::slice::from_ref(&single), DEFAULTS, now());
    assert_eq!(r.state, State::Ok, "{}", r.text);
    assert!(
        r.text.contains("1 line(s) with one replica not checked"),
        "{}",
        r.text
    );
    let limits = Limits {
        max_lag: Some(Duration::from_secs(3600)),
        ..DEFAULTS
    };
    assert_eq!(
        evaluate(&[], &[single], limits, now()).state,
        State::Critical
    );
}

#[test]
fn short_durations_keep_two_units() {
    assert_eq!(short(Duration::from_secs(0)), "0s");
    assert_eq!(short(Duration::from_secs(45)), "45s");
    assert_eq!(short(Duration::from_secs(7200)), "2h");
    assert_eq!(short(Duration::from_secs(11_520)), "3h12m");
    assert_eq!(short(Duration::from_secs(86_400 + 6 * 3600 + 59)), "1d6h");
}

#[test]
fn only_status_check_command_lines_count_as_a_check() {
    let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
    assert!(requested(&args(&["ferry", "status", "--check"])));
    assert!(!requested(&args(&["ferry", "status"])));
    assert!(!requested(&args(&[
        "ferry", "task", "run", "--", "status", "--check"
    ])));
}

/// Share names may hold a quote, `=` or `|`: the perfdata label doubles the
/// quote and drops `=`, and no `|` but the one before the perfdata reaches
/// the output (a monitoring system starts the perfdata at the first).
#[test]
fn names_with_plugin_syntax_are_escaped() {
    let mut odd = line(TimeDelta::hours(3), Some(Duration::from_secs(3600)));
    odd.newest.share = "it's = a|b".into();
    let r = evaluate(&[], &[odd], DEFAULTS, now());
    assert_eq!(r.state, State::Critical, "{}", r.text);
    let (text, perf) = r.text.split_once('|').expect("perfdata");
    assert!(!perf.contains('|'), "{}", r.text);
    assert!(text.contains("nas1/it's = a\u{a6}b@backup"), "{}", r.text);
    assert_eq!(
        perf.trim(),
        "'nas1/it''s _ a|b@backup age'=10800s;;7800;0;".replace('|', "\u{a6}")
    );
}
