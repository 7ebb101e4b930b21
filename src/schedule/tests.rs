//! The schedule's parsing, bounds and due times, DST transitions included.

use super::*;
use chrono::TimeZone;

fn every(spec: &str) -> Duration {
    match Schedule::parse(spec) {
        Ok(Schedule::Every(d)) => d,
        other => panic!("{spec}: {other:?}"),
    }
}

#[test]
fn seconds_and_durations() {
    assert_eq!(every("300"), Duration::from_secs(300));
    assert_eq!(every("60"), Duration::from_secs(60));
    assert_eq!(every("90s"), Duration::from_secs(90));
    assert_eq!(every("5m"), Duration::from_secs(300));
    assert_eq!(every("1h"), Duration::from_secs(3600));
    assert_eq!(every("1h30m"), Duration::from_secs(5400));
    assert_eq!(every(" 2d "), Duration::from_secs(172_800));
}

#[test]
fn refuses_faster_than_a_minute_naming_the_minimum() {
    for spec in [
        "59",
        "30s",
        "0",
        "1",
        "59s",
        "*/30 * * * * *",
        "* * * * * *",
    ] {
        let err = Schedule::parse(spec).expect_err(spec);
        assert!(
            matches!(err, ScheduleError::TooFrequent { .. }),
            "{spec}: {err:?}"
        );
        assert!(err.to_string().contains("minimum is 60s"), "{err}");
    }
    // Two firings within one minute, once a year, is still too frequent.
    assert!(Schedule::parse("0,30 0 0 1 1 *").is_err());
}

#[test]
fn cron_patterns() {
    for spec in [
        "*/5 * * * *",
        "0 3 * * *",
        "15 */5 * * * *",
        "@hourly",
        "0 0 * * 1-5",
    ] {
        let s = Schedule::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert!(matches!(s, Schedule::Cron { .. }), "{spec}");
        let now = Utc::now();
        let next = s.next_due(now, None).expect("fires");
        assert!(next > now);
    }
    assert_eq!(
        Schedule::parse("*/5 * * * *").map(|s| s.canonical()),
        Ok("0 */5 * * * *".to_string())
    );
}

#[test]
fn garbage_is_invalid() {
    for spec in ["5 minutes", "often", "5x", "61 * * * *", "1h-"] {
        let err = Schedule::parse(spec).expect_err(spec);
        assert!(
            matches!(err, ScheduleError::Invalid { .. }),
            "{spec}: {err:?}"
        );
    }
    assert!(matches!(Schedule::parse("  "), Err(ScheduleError::Empty)));
}

#[test]
fn intervals_count_from_the_last_run() {
    let s = Schedule::parse("5m").expect("valid");
    let now = Utc::now();
    assert_eq!(s.next_due(now, None), Some(now));
    let last = now - TimeDelta::minutes(1);
    assert_eq!(
        s.next_due(now, Some(last)),
        Some(last + TimeDelta::minutes(5))
    );
    let long_ago = now - TimeDelta::hours(1);
    assert_eq!(s.next_due(now, Some(long_ago)), Some(now));
}

#[test]
fn refuses_longer_than_366_days_naming_the_maximum() {
    assert_eq!(every("366d"), MAX_INTERVAL);
    assert_eq!(every("1y"), Duration::from_secs(31_557_600));
    for spec in [
        "367d",
        "300000years",
        "1000000000000000",
        "99999999999999999999999",
        "18446744073709551615",
        "584942417355years",
    ] {
        let err = Schedule::parse(spec).expect_err(spec);
        assert!(
            matches!(err, ScheduleError::TooRare { .. }),
            "{spec}: {err:?}"
        );
        assert!(err.to_string().contains("maximum of 366 days"), "{err}");
    }
}

/// Every time chrono can hold, as `now` or as the last run: the extremes a
/// hand-edited or future row may hold. Nothing panics, and what is due is
/// never before `now` unless the schedule never fires.
#[test]
fn extreme_times_never_panic() {
    let times = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MIN_UTC + TimeDelta::days(1),
        DateTime::parse_from_rfc3339("0000-01-01T00:00:00Z")
            .expect("valid")
            .to_utc(),
        DateTime::UNIX_EPOCH,
        Utc::now(),
        DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
            .expect("valid")
            .to_utc(),
        DateTime::<Utc>::MAX_UTC - TimeDelta::days(1),
        DateTime::<Utc>::MAX_UTC,
    ];
    for spec in ["60", "366d", "*/5 * * * *", "0 3 * * *", "0 0 29 2 *"] {
        for zone in [None, Some("Europe/Berlin"), Some("Pacific/Kiritimati")] {
            let Ok(s) = Schedule::parse_in(spec, zone) else {
                continue; // a zone on an interval
            };
            for now in times {
                for last in times.iter().copied().map(Some).chain([None]) {
                    if let Some(due) = s.next_due(now, last) {
                        assert!(due >= now, "{spec} {now} {last:?}: {due}");
                    }
                }
                let _ = s.next_slot(now);
                let _ = s.period_after(now);
            }
        }
    }
}

#[test]
fn a_last_run_in_the_future_counts_as_now() {
    let s = Schedule::parse("60").expect("valid");
    let now = Utc::now();
    let future = now + TimeDelta::hours(2);
    assert_eq!(
        s.next_due(now, Some(future)),
        Some(now + TimeDelta::minutes(1))
    );
}

fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Berlin
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .expect("exists")
        .to_utc()
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("valid").to_utc()
}

/// The slots from `from` to `to`, in order, as the scheduler meets them.
fn slots(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut at = from;
    while let Some(next) = s.next_slot(at).filter(|n| *n <= to) {
        out.push(next);
        at = next;
    }
    out
}

#[test]
fn cron_follows_the_zone_it_is_given() {
    let s = Schedule::parse_in("0 3 * * *", Some("Europe/Berlin")).expect("valid");
    // Winter: 03:00 CET is 02:00 UTC; summer: 03:00 CEST is 01:00 UTC.
    assert_eq!(
        s.next_slot(utc("2026-01-10T12:00:00Z")),
        Some(utc("2026-01-11T02:00:00Z"))
    );
    assert_eq!(
        s.next_slot(utc("2026-07-10T12:00:00Z")),
        Some(utc("2026-07-11T01:00:00Z"))
    );
    assert_eq!(s.timezone().as_deref(), Some("Europe/Berlin"));
    assert_eq!(s.to_string(), "cron 0 0 3 * * * (Europe/Berlin)");
}

#[test]
fn a_zone_is_refused_unless_it_is_an_iana_name_for_a_cron_schedule() {
    assert!(matches!(
        Schedule::parse_in("0 3 * * *", Some("Berlin")),
        Err(ScheduleError::BadZone { .. })
    ));
    let err = Schedule::parse_in("5m", Some("Europe/Berlin")).expect_err("interval");
    assert!(
        matches!(err, ScheduleError::ZoneWithoutCron { .. }),
        "{err}"
    );
}

/// Spring forward in Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST.
#[test]
fn spring_forward_neither_skips_nor_doubles_a_run() {
    let (from, to) = (berlin(2026, 3, 28, 12, 0), berlin(2026, 3, 30, 12, 0));
    // A daily job at 02:30, a time that does not exist that day, runs once,
    // right after the gap (03:00 CEST = 01:00 UTC), and at 02:30 the next day.
    let daily = Schedule::parse_in("30 2 * * *", Some("Europe/Berlin")).expect("valid");
    assert_eq!(
        slots(&daily, from, to),
        [utc("2026-03-29T01:00:00Z"), utc("2026-03-30T00:30:00Z")]
    );
    // Every 30 minutes: evenly spread in real time across the gap.
    let half = Schedule::parse_in("*/30 * * * *", Some("Europe/Berlin")).expect("valid");
    let runs = slots(&half, berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 29, 5, 0));
    let gaps: Vec<i64> = runs
        .windows(2)
        .map(|w| (w[1] - w[0]).num_minutes())
        .collect();
    assert!(gaps.iter().all(|g| *g == 30), "{runs:?}");
    assert_eq!(runs.first(), Some(&utc("2026-03-28T23:30:00Z")));
}

/// Fall back in Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET.
#[test]
fn fall_back_neither_skips_nor_doubles_a_run() {
    let (from, to) = (berlin(2026, 10, 24, 12, 0), berlin(2026, 10, 26, 12, 0));
    // 02:30 happens twice; the daily job runs at the first (00:30 UTC) only.
    let daily = Schedule::parse_in("30 2 * * *", Some("Europe/Berlin")).expect("valid");
    assert_eq!(
        slots(&daily, from, to),
        [utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
    );
    // Every 30 minutes: through both passes of the repeated hour, in order.
    let half = Schedule::parse_in("*/30 * * * *", Some("Europe/Berlin")).expect("valid");
    let runs = slots(
        &half,
        utc("2026-10-24T23:00:00Z"),
        utc("2026-10-25T03:00:00Z"),
    );
    let gaps: Vec<i64> = runs
        .windows(2)
        .map(|w| (w[1] - w[0]).num_minutes())
        .collect();
    assert!(gaps.iter().all(|g| *g == 30), "{runs:?}");
    assert_eq!(runs.len(), 8, "{runs:?}");
    // A scheduler that restarts inside the repeated hour, after 02:30 CEST
    // ran, does not run it again at 02:30 CET.
    let restart = utc("2026-10-25T01:10:00Z"); // 02:10 CET
    assert_eq!(
        daily.next_due(restart, Some(utc("2026-10-25T00:30:01Z"))),
        Some(utc("2026-10-26T01:30:00Z"))
    );
    assert_eq!(daily.next_slot(restart), Some(utc("2026-10-26T01:30:00Z")));
}

#[test]
fn a_cron_slot_is_not_replayed_after_the_clock_steps_back() {
    let daily = Schedule::parse_in("0 3 * * *", Some("UTC")).expect("valid");
    // Ran at 03:00; the clock then says 02:00 again: next is tomorrow 03:00.
    let last = utc("2026-05-01T03:00:00Z");
    assert_eq!(
        daily.next_due(utc("2026-05-01T02:00:00Z"), Some(last)),
        Some(utc("2026-05-02T03:00:00Z"))
    );
    // Every minute, the last run 7 minutes "ahead": a minute or so from now,
    // not 7 minutes (history alone cannot tell how long ago it really was, so
    // it counts as now).
    let minutely = Schedule::parse_in("*/1 * * * *", Some("UTC")).expect("valid");
    let now = utc("2026-05-01T10:00:30Z");
    assert_eq!(
        minutely.next_due(now, Some(utc("2026-05-01T10:07:00Z"))),
        Some(utc("2026-05-01T10:02:00Z"))
    );
    // The scheduler knows, from its monotonic clock, that it ran 30 s ago:
    // the next minute.
    assert_eq!(
        minutely.next_due_since(
            now,
            utc("2026-05-01T10:00:00Z"),
            Some(TimeDelta::minutes(1))
        ),
        Some(utc("2026-05-01T10:01:00Z"))
    );
}
