//! Task schedules: the `--frequency` SPEC (seconds, a duration, or a cron
//! expression in a time zone), its bounds, and when a schedule is due next.

mod error;
mod slot;
mod zone;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

pub use error::ScheduleError;
pub use zone::{local_time, parse_zone, system_zone};

/// No schedule may fire more often than this: each run takes a snapshot and a
/// round trip to the target, and faster schedules only pile up work.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// No interval may be longer than this (366 days): a yearly run is the longest
/// anyone needs, and the bound keeps every date computed from a stored
/// frequency far inside chrono's range, whatever a row holds.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Slack for "the slot after the last one" when the clock has stepped: a
/// slot this close to a full period after the last run is that next slot.
const SLACK: TimeDelta = TimeDelta::seconds(1);

/// A parsed, validated schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Fires every `Duration` (60 s to 366 days) of elapsed time, counted from
    /// the previous run.
    Every(Duration),
    /// Fires on a cron pattern (stored with an explicit seconds field) in a
    /// time zone; `None` is the system's zone ([`system_zone`]).
    Cron { cron: Box<Cron>, zone: Option<Tz> },
}

impl Schedule {
    /// Parses a SPEC as given to `--frequency` (cron in the system's zone) and
    /// refuses schedules that fire too often or too rarely.
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] naming the spec and what to give instead.
    pub fn parse(spec: &str) -> Result<Self, ScheduleError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if let Some(every) = parse_interval(spec) {
            let every = every.map_err(|reason| match reason {
                IntervalError::Huge => ScheduleError::TooRare {
                    spec: spec.to_string(),
                },
                IntervalError::Unreadable(reason) => ScheduleError::Invalid {
                    spec: spec.to_string(),
                    reason,
                },
            })?;
            if every < MIN_INTERVAL {
                return Err(ScheduleError::TooFrequent {
                    spec: spec.to_string(),
                    every: humantime::format_duration(every).to_string(),
                });
            }
            if every > MAX_INTERVAL {
                return Err(ScheduleError::TooRare {
                    spec: spec.to_string(),
                });
            }
            return Ok(Schedule::Every(every));
        }
        let cron = parse_cron(spec)?;
        check_cron_gap(spec, &cron)?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            zone: None,
        })
    }

    /// [`Schedule::parse`] with `--timezone`: the validation `task add` and
    /// `task set` share, and how a stored task's row is read back.
    ///
    /// # Errors
    ///
    /// As [`Schedule::parse`]; [`ScheduleError::BadZone`] for a name outside the
    /// tz database, [`ScheduleError::ZoneWithoutCron`] for a zone on an interval.
    pub fn parse_in(spec: &str, zone: Option<&str>) -> Result<Self, ScheduleError> {
        let schedule = Schedule::parse(spec)?;
        let Some(name) = zone else {
            return Ok(schedule);
        };
        let tz = parse_zone(name)?;
        match schedule {
            Schedule::Cron { cron, .. } => Ok(Schedule::Cron {
                cron,
                zone: Some(tz),
            }),
            Schedule::Every(_) => Err(ScheduleError::ZoneWithoutCron {
                zone: name.to_string(),
                spec: spec.trim().to_string(),
            }),
        }
    }

    /// The zone a cron schedule is evaluated in; `None` for an interval.
    pub fn zone(&self) -> Option<Tz> {
        match self {
            Schedule::Every(_) => None,
            Schedule::Cron { zone, .. } => Some(zone.unwrap_or_else(system_zone)),
        }
    }

    /// The zone named with `--timezone`, as stored; `None` for the system's.
    pub fn timezone(&self) -> Option<String> {
        match self {
            Schedule::Cron { zone: Some(z), .. } => Some(z.name().to_string()),
            _ => None,
        }
    }

    /// The first cron slot strictly after `after`; `None` for an interval, or a
    /// pattern that never fires again.
    pub fn next_slot(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(_) => None,
            Schedule::Cron { cron, zone } => {
                slot::next_slot(cron, zone.unwrap_or_else(system_zone), after)
            }
        }
    }

    /// How long a cron schedule waits after the slot at (or just before)
    /// `slot`: its period there, DST included. `None` for an interval.
    pub fn period_after(&self, slot: DateTime<Utc>) -> Option<TimeDelta> {
        Some(self.next_slot(slot)?.signed_duration_since(slot))
    }

    /// When the schedule is due, at `now`, for a task whose last run started at
    /// `last` (wall time, from history). `None` if it never fires again.
    ///
    /// - An interval is due at once without a last run, else `every` after it;
    ///   a last run in the future (the clock stepped back since) counts as
    ///   having started now, so the task neither stalls for the step nor runs
    ///   twice.
    /// - A cron schedule is due at its first slot after `now`, and never before
    ///   a full period after the slot its last run was for: a clock stepped back
    ///   does not replay a slot that already ran. A missed slot is not caught
    ///   up (cron's own rule).
    ///
    /// All arithmetic is checked: no stored value can make this panic.
    pub fn next_due(
        &self,
        now: DateTime<Utc>,
        last: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(every) => {
                let every = TimeDelta::from_std(*every).ok()?;
                let Some(last) = last else { return Some(now) };
                let elapsed = now
                    .signed_duration_since(last)
                    .clamp(TimeDelta::zero(), every);
                now.checked_add_signed(every.checked_sub(&elapsed)?)
            }
            Schedule::Cron { .. } => match last {
                None => self.next_slot(now),
                Some(last) => self.next_due_since(now, last.min(now), self.period_after(last)),
            },
        }
    }

    /// A cron schedule's first slot after `now` that is at least `period`
    /// after `last`, the start of the last run as read on today's wall clock
    /// (the scheduler moves it back when the clock steps back), with `period`
    /// measured where that run's slot was. An interval's is `None`.
    pub fn next_due_since(
        &self,
        now: DateTime<Utc>,
        last: DateTime<Utc>,
        period: Option<TimeDelta>,
    ) -> Option<DateTime<Utc>> {
        let guard = period
            .and_then(|p| last.checked_add_signed(p))
            .and_then(|t| t.checked_sub_signed(SLACK));
        self.next_slot(guard.map_or(now, |g| g.max(now)))
    }

    /// The form stored in the database: seconds for intervals, and for cron the
    /// pattern with an explicit seconds field (the zone is stored beside it).
    pub fn canonical(&self) -> String {
        match self {
            Schedule::Every(every) => every.as_secs().to_string(),
            Schedule::Cron { cron, .. } => cron.pattern.to_string(),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(every) => write!(f, "every {}", humantime::format_duration(*every)),
            Schedule::Cron {
                cron,
                zone: Some(zone),
            } => write!(f, "cron {} ({zone})", cron.pattern),
            Schedule::Cron { cron, zone: None } => {
                write!(f, "cron {} (local time, {})", cron.pattern, system_zone())
            }
        }
    }
}

enum IntervalError {
    Huge,
    Unreadable(String),
}

/// `None` when the spec does not look like an interval (so it may be cron);
/// `Some(Err)` when it does but cannot be read.
fn parse_interval(spec: &str) -> Option<Result<Duration, IntervalError>> {
    if spec.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only too many of them can fail.
        return Some(
            spec.parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| IntervalError::Huge),
        );
    }
    // A duration has no spaces and starts with a digit ("5m", "1h30m"); cron has spaces.
    let looks_like_duration =
        !spec.contains(char::is_whitespace) && spec.starts_with(|c: char| c.is_ascii_digit());
    looks_like_duration.then(|| {
        humantime::parse_duration(spec).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => IntervalError::Huge,
            other => IntervalError::Unreadable(other.to_string()),
        })
    })
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
mod tests;
