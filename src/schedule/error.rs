//! Why a `--frequency` or `--timezone` was refused: one line naming the value
//! at fault and what to give instead.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("frequency is empty; give seconds (300), a duration (5m, 1h) or a cron expression")]
    Empty,
    #[error("frequency {spec:?} fires every {every}; the minimum is 60s, so use 60 or more seconds, 1m or longer, or a cron expression with one fixed second")]
    TooFrequent { spec: String, every: String },
    #[error("frequency {spec:?} is longer than the maximum of 366 days; give 366d or less, or a yearly cron expression (0 0 1 1 *)")]
    TooRare { spec: String },
    #[error("frequency {spec:?} is neither seconds (300), a duration (5m, 1h) nor a cron expression ({reason})")]
    Invalid { spec: String, reason: String },
    #[error("frequency {spec:?} never fires; give a cron expression that matches a future time")]
    Never { spec: String },
    #[error("time zone {zone:?} is not an IANA zone name; give one like Europe/Berlin, America/New_York or UTC (see /usr/share/zoneinfo)")]
    BadZone { zone: String },
    #[error("--timezone {zone} applies to cron schedules only; frequency {spec:?} is an interval, which no zone changes: leave --timezone out")]
    ZoneWithoutCron { zone: String, spec: String },
}
