//! The config file's `[history]`: how long the daemons keep their history rows
//! and when they prune, and the cron form every housekeeping job is written in.

use serde::{Deserialize, Serialize};

/// `[history]`: how long both daemons keep their history rows, and when they prune.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySettings {
    /// Rows older than this many days go, except each task's or replica
    /// line's newest, rows still running, and rows confirming a snapshot
    /// still on disk. At least 1.
    pub keep_days: u32,
    /// When: cron, 5 or 6 fields, UTC.
    pub prune: String,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            keep_days: 180,
            prune: "30 3 * * *".to_string(),
        }
    }
}

impl HistorySettings {
    /// The retention job as the daemons run it.
    pub fn retention(&self) -> crate::housekeeping::Retention {
        crate::housekeeping::Retention {
            cron: job_cron(&self.prune).unwrap_or_else(|_| self.prune.clone()),
            keep_days: self.keep_days,
        }
    }
}

/// A housekeeping job's cron expression in the 6-field form the job
/// scheduler takes, or why it is not one: an interval, or one firing more
/// often than once a minute, is refused like a task's `--frequency`.
///
/// # Errors
///
/// The reason, for the config error that names the key.
pub fn job_cron(spec: &str) -> Result<String, String> {
    match crate::schedule::Schedule::parse(spec) {
        Ok(s @ crate::schedule::Schedule::Cron { .. }) => Ok(s.canonical()),
        Ok(_) => Err(format!(
            "{spec:?} is an interval; give a cron expression, e.g. \"30 3 * * *\""
        )),
        Err(e) => Err(e.to_string()),
    }
}
