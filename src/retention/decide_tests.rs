//! The grid against tables of synthetic snapshot times: each row is a snapshot
//! (oldest first) and the verdict it must get.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::*;

struct Case {
    name: &'static str,
    grid: &'static str,
    newest: u32,
    cap: Option<u32>,
    /// Indexes the caller protects (the common base).
    protected: &'static [usize],
    zone: Tz,
    now: &'static str,
    rows: &'static [(&'static str, &'static str)],
}

fn utc(text: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    Utc.from_utc_datetime(&naive)
}

fn check(case: &Case) {
    let created: Vec<_> = case.rows.iter().map(|(t, _)| utc(t)).collect();
    let protected: Vec<bool> = (0..created.len())
        .map(|i| case.protected.contains(&i))
        .collect();
    let policy = Policy {
        newest: case.newest,
        grid: case.grid.parse().expect("grid"),
        cap: case.cap,
    };
    let verdicts = decide(&created, &protected, &policy, &case.zone, utc(case.now));
    let got: Vec<String> = verdicts.iter().map(Verdict::to_string).collect();
    let want: Vec<&str> = case.rows.iter().map(|(_, v)| *v).collect();
    for ((row, g), w) in case.rows.iter().zip(&got).zip(&want) {
        assert_eq!(g, w, "case `{}`, snapshot {}", case.name, row.0);
    }
}

const DEL: &str = "delete (no rule keeps it)";

#[test]
fn the_grid_keeps_the_oldest_of_each_of_the_last_periods() {
    let cases = [
        Case {
            name: "hours: the last 3 hours, the current one included",
            grid: "3h",
            newest: 1,
            cap: None,
            protected: &[],
            zone: Tz::UTC,
            now: "2026-11-25 12:30",
            rows: &[
                ("2026-11-25 09:10", DEL),
                ("2026-11-25 10:05", "keep (hourly (3h))"),
                ("2026-11-25 10:40", DEL),
                ("2026-11-25 11:00", "keep (hourly (3h))"),
                ("2026-11-25 11:59", DEL),
                ("2026-11-25 12:10", "keep (hourly (3h))"),
                ("2026-11-25 12:20", "keep (newest 1)"),
            ],
        },
        Case {
            name: "weeks start on Monday",
            grid: "1w",
            newest: 1,
            cap: None,
            protected: &[],
            zone: Tz::UTC,
            now: "2026-11-25 12:30",
            rows: &[
                ("2026-11-22 10:00", DEL),                  // Sunday: last week
                ("2026-11-23 09:00", "keep (weekly (1w))"), // Monday
                ("2026-11-23 18:00", DEL),
                ("2026-11-24 08:00", "keep (newest 1)"),
            ],
        },
        Case {
            name: "months and years, every rule named",
            grid: "2m 2y 3d",
            newest: 2,
            cap: None,
            protected: &[],
            zone: Tz::UTC,
            now: "2026-11-25 12:30",
            rows: &[
                ("2024-06-01 00:00", DEL),
                ("2025-12-31 23:00", "keep (yearly (2y))"),
                ("2026-01-15 00:00", "keep (yearly (2y))"),
                ("2026-10-01 00:00", "keep (monthly (2m))"),
                ("2026-10-20 00:00", DEL),
                ("2026-11-02 00:00", "keep (monthly (2m))"),
                ("2026-11-24 07:00", "keep (newest 2, daily (3d))"),
                ("2026-11-25 07:00", "keep (newest 2, daily (3d))"),
            ],
        },
        Case {
            name: "days are counted in the zone: 22:30 and 23:30 UTC are two days in Berlin",
            grid: "2d",
            newest: 1,
            cap: None,
            protected: &[],
            zone: Tz::Europe__Berlin,
            now: "2026-03-29 12:00",
            rows: &[
                ("2026-03-28 22:30", "keep (daily (2d))"),
                ("2026-03-28 23:30", "keep (daily (2d))"),
                ("2026-03-29 11:00", "keep (newest 1)"),
            ],
        },
        Case {
            name: "the same in UTC: one day",
            grid: "2d",
            newest: 1,
            cap: None,
            protected: &[],
            zone: Tz::UTC,
            now: "2026-03-29 12:00",
            rows: &[
                ("2026-03-28 22:30", "keep (daily (2d))"),
                ("2026-03-28 23:30", DEL),
                ("2026-03-29 11:00", "keep (newest 1, daily (2d))"),
            ],
        },
        Case {
            name: "the common base stays whatever the rules say",
            grid: "none",
            newest: 1,
            cap: None,
            protected: &[1],
            zone: Tz::UTC,
            now: "2026-11-25 12:30",
            rows: &[
                ("2026-11-25 09:00", DEL),
                ("2026-11-25 10:00", "keep (common base)"),
                ("2026-11-25 11:00", DEL),
                ("2026-11-25 12:00", "keep (newest 1)"),
            ],
        },
        Case {
            name: "an old common base outside every period still stays",
            grid: "24h 7d",
            newest: 1,
            cap: None,
            protected: &[0],
            zone: Tz::UTC,
            now: "2026-11-25 12:30",
            rows: &[
                ("2025-01-01 00:00", "keep (common base)"),
                ("2025-01-02 00:00", DEL),
                (
                    "2026-11-25 12:00",
                    "keep (newest 1, hourly (24h), daily (7d))",
                ),
            ],
        },
        Case {
            name: "over the cap the oldest kept go, never the protected",
            grid: "none",
            newest: 5,
            cap: Some(3),
            protected: &[0],
            zone: Tz::UTC,
            now: "2026-11-25 12:30",
            rows: &[
                ("2026-11-25 07:00", "keep (common base)"),
                (
                    "2026-11-25 08:00",
                    "delete (over the receiver's cap of 3 per line)",
                ),
                (
                    "2026-11-25 09:00",
                    "delete (over the receiver's cap of 3 per line)",
                ),
                (
                    "2026-11-25 10:00",
                    "delete (over the receiver's cap of 3 per line)",
                ),
                ("2026-11-25 11:00", "keep (newest 5)"),
                ("2026-11-25 12:00", "keep (newest 5)"),
            ],
        },
        Case {
            name: "a snapshot from before the clock jumped back is kept by the grid",
            grid: "1d",
            newest: 1,
            cap: None,
            protected: &[],
            zone: Tz::UTC,
            now: "2026-11-25 12:30",
            rows: &[
                ("2026-11-25 10:00", "keep (daily (1d))"),
                ("2026-11-26 09:00", "keep (daily (1d))"),
                ("2026-11-25 12:20", "keep (newest 1)"),
            ],
        },
        Case {
            name: "newest 0 still keeps one",
            grid: "none",
            newest: 0,
            cap: None,
            protected: &[],
            zone: Tz::UTC,
            now: "2026-11-25 12:30",
            rows: &[
                ("2026-11-25 10:00", DEL),
                ("2026-11-25 11:00", "keep (newest 1)"),
            ],
        },
    ];
    assert_eq!(utc("2026-11-23 09:00").weekday(), Weekday::Mon);
    for case in &cases {
        check(case);
    }
}

#[test]
fn nothing_to_decide_is_nothing_decided() {
    let policy = Policy {
        newest: 3,
        grid: "24h".parse().expect("grid"),
        cap: Some(1),
    };
    assert!(decide(&[], &[], &policy, &Tz::UTC, Utc::now()).is_empty());
}

#[test]
fn periods_are_consecutive_across_boundaries() {
    let z = Tz::UTC;
    let at = |t| utc(t);
    assert_eq!(
        period(at("2027-01-01 00:00"), Unit::Year, &z)
            - period(at("2026-12-31 23:59"), Unit::Year, &z),
        1
    );
    assert_eq!(
        period(at("2027-01-01 00:00"), Unit::Month, &z)
            - period(at("2026-12-31 23:59"), Unit::Month, &z),
        1
    );
    assert_eq!(
        period(at("2026-11-23 00:00"), Unit::Week, &z)
            - period(at("2026-11-22 23:59"), Unit::Week, &z),
        1
    );
    assert_eq!(
        period(at("2026-11-24 00:00"), Unit::Hour, &z)
            - period(at("2026-11-23 23:59"), Unit::Hour, &z),
        1
    );
}
