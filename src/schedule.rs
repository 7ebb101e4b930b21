//! Task schedules: the `--frequency` SPEC (seconds, a duration, or a cron expression),
//! its 60-second floor, and when a schedule fires next.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use thiserror::Error;

/// No schedule may fire more often than this: each run takes a snapshot and a
/// round trip to the target, and faster schedules only pile up work.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("frequency is empty; give seconds (300), a duration (5m, 1h) or a cron expression")]
    Empty,
    #[error("frequency {spec:?} fires every {every}; the minimum is 60s, so use 60 or more seconds, 1m or longer, or a cron expression with one fixed second")]
    TooFrequent { spec: String, every: String },
    #[error("frequency {spec:?} is neither seconds (300), a duration (5m, 1h) nor a cron expression ({reason})")]
    Invalid { spec: String, reason: String },
    #[error("frequency {spec:?} never fires; give a cron expression that matches a future time")]
    Never { spec: String },
}

/// A parsed, validated schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Fires every `Duration`, counted from the previous run.
    Every(Duration),
    /// Fires on a cron pattern (UTC), stored with an explicit seconds field.
    Cron(Box<Cron>),
}

impl Schedule {
    /// Parses a SPEC as given to `--frequency` and refuses schedules that fire too often.
    pub fn parse(spec: &str) -> Result<Self, ScheduleError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if let Some(every) = parse_interval(spec) {
            let every = every.map_err(|reason| ScheduleError::Invalid {
                spec: spec.to_string(),
                reason,
            })?;
            if every < MIN_INTERVAL {
                return Err(ScheduleError::TooFrequent {
                    spec: spec.to_string(),
                    every: humantime::format_duration(every).to_string(),
                });
            }
            return Ok(Schedule::Every(every));
        }
        let cron = parse_cron(spec)?;
        check_cron_gap(spec, &cron)?;
        Ok(Schedule::Cron(Box::new(cron)))
    }

    /// The first time strictly after `after` at which this schedule fires.
    /// `last_run` anchors interval schedules; without it they are due at once.
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        last_run: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(every) => {
                let every = TimeDelta::from_std(*every).ok()?;
                Some(match last_run {
                    Some(last) => (last + every).max(after),
                    None => after,
                })
            }
            Schedule::Cron(cron) => cron.find_next_occurrence(&after, false).ok(),
        }
    }

    /// The form stored in the database: seconds for intervals, and for cron the
    /// pattern with an explicit seconds field.
    pub fn canonical(&self) -> String {
        match self {
            Schedule::Every(every) => every.as_secs().to_string(),
            Schedule::Cron(cron) => cron.pattern.to_string(),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(every) => write!(f, "every {}", humantime::format_duration(*every)),
            Schedule::Cron(cron) => write!(f, "cron {}", cron.pattern),
        }
    }
}

/// `None` when the spec does not look like an interval (so it may be cron);
/// `Some(Err)` when it does but cannot be read.
fn parse_interval(spec: &str) -> Option<Result<Duration, String>> {
    if spec.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            spec.parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|e| e.to_string()),
        );
    }
    // A duration has no spaces and starts with a digit ("5m", "1h30m"); cron has spaces.
    let looks_like_duration =
        !spec.contains(char::is_whitespace) && spec.starts_with(|c: char| c.is_ascii_digit());
    looks_like_duration.then(|| humantime::parse_duration(spec).map_err(|e| e.to_string()))
}

fn parse_cron(spec: &str) -> Result<Cron, ScheduleError> {
    // Users write classic 5-field cron; the scheduler wants a seconds field, so
    // a 5-field pattern gets second 0 and the stored form is always explicit.
    let fields = spec.split_whitespace().count();
    let pattern = if fields == 5 {
        format!("0 {spec}")
    } else {
        spec.to_string()
    };
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(&pattern)
        .map_err(|e| ScheduleError::Invalid {
            spec: spec.to_string(),
            reason: e.to_string(),
        })
}

/// A cron pattern fires more often than once a minute exactly when its seconds
/// field matches more than one second: then two firings share a minute. So look
/// at the first matching minute from its start; its first two firings tell.
fn check_cron_gap(spec: &str, cron: &Cron) -> Result<(), ScheduleError> {
    let never = || ScheduleError::Never {
        spec: spec.to_string(),
    };
    let first = cron
        .find_next_occurrence(&Utc::now(), false)
        .map_err(|_| never())?;
    let minute = first
        .duration_trunc(TimeDelta::minutes(1))
        .map_err(|_| never())?;
    let a = cron
        .find_next_occurrence(&minute, true)
        .map_err(|_| never())?;
    let Ok(b) = cron.find_next_occurrence(&a, false) else {
        return Ok(()); // fires once, ever: not too often
    };
    let gap = (b - a).to_std().unwrap_or_default();
    if gap < MIN_INTERVAL {
        return Err(ScheduleError::TooFrequent {
            spec: spec.to_string(),
            every: humantime::format_duration(gap).to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert!(matches!(s, Schedule::Cron(_)), "{spec}");
            let now = Utc::now();
            let next = s.next_after(now, None).expect("fires");
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
        assert_eq!(s.next_after(now, None), Some(now));
        let last = now - TimeDelta::minutes(1);
        assert_eq!(
            s.next_after(now, Some(last)),
            Some(last + TimeDelta::minutes(5))
        );
        let long_ago = now - TimeDelta::hours(1);
        assert_eq!(s.next_after(now, Some(long_ago)), Some(now));
    }
}
