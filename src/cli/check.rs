//! `ferry status --check`: a monitoring plugin (Nagios, Icinga, Sensu). Exit 0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN; a summary line, a line per problem, perfdata.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::output::time;
use crate::health::{ReplicaLine, TaskHealth};

/// Monitoring plugin states, in the order of their exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What the check was asked to hold the appliance to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Overrides every task's default lag limit and every replica line's age limit.
    pub max_lag: Option<Duration>,
    /// A task this many failures in a row is a WARNING.
    pub warn_failures: u32,
}

/// One thing wrong: the short form goes in the summary, the long one below it.
struct Problem {
    state: State,
    short: String,
    long: String,
}

/// The plugin's whole output and its state.
pub struct Report {
    pub state: State,
    pub text: String,
}

/// Checks `tasks` (enabled ones) and `lines` at `now` against `limits`.
pub fn evaluate(
    tasks: &[TaskHealth],
    lines: &[ReplicaLine],
    limits: Limits,
    now: DateTime<Utc>,
) -> Report {
    let mut problems = Vec::new();
    let mut perf = Vec::new();
    let enabled: Vec<&TaskHealth> = tasks.iter().filter(|t| t.task.enabled).collect();
    for t in &enabled {
        check_task(t, limits, now, &mut problems, &mut perf);
    }
    let mut unchecked = 0;
    for l in lines {
        if !check_line(l, limits, &mut problems, &mut perf) {
            unchecked += 1;
        }
    }
    problems.sort_by_key(|p| std::cmp::Reverse(p.state));
    let state = problems.first().map_or(State::Ok, |p| p.state);
    let summary = if problems.is_empty() {
        let mut s = format!(
            "{} enabled task(s) within their lag, {} replica line(s) fresh",
            enabled.len(),
            lines.len() - unchecked
        );
        if unchecked > 0 {
            let _ = write!(
                s,
                ", {unchecked} line(s) with one replica not checked (give --max-lag)"
            );
        }
        s
    } else {
        let shown: Vec<&str> = problems.iter().take(3).map(|p| p.short.as_str()).collect();
        let mut s = shown.join("; ");
        if problems.len() > shown.len() {
            let _ = write!(s, "; {} more", problems.len() - shown.len());
        }
        s
    };
    let mut text = format!("FERRY {} - {}\n", state.word(), plugin_text(&summary));
    for p in &problems {
        let _ = writeln!(text, "{}: {}", p.state.word(), plugin_text(&p.long));
    }
    if !perf.is_empty() {
        let _ = writeln!(text, "| {}", perf.join(" "));
    }
    Report { state, text }
}

/// A share name may hold what the plugin format reserves: `|` starts the
/// perfdata wherever it stands, so in text it becomes `¦`.
fn plugin_text(text: &str) -> String {
    text.replace('|', "\u{a6}")
}

/// A perfdata label, quoted: a `'` in it doubled, as the plugin guidelines
/// say, `=` (which ends a label in every parser) made `_`, `|` as in text.
fn perf_label(name: &str) -> String {
    let name = plugin_text(name);
    format!("'{}'", name.replace('\'', "''").replace('=', "_"))
}

/// The output of a check that could not look: UNKNOWN and why.
pub fn unknown(why: &str) -> Report {
    Report {
        state: State::Unknown,
        text: format!("FERRY UNKNOWN - {why}\n"),
    }
}

fn check_task(
    t: &TaskHealth,
    limits: Limits,
    now: DateTime<Utc>,
    problems: &mut Vec<Problem>,
    perf: &mut Vec<String>,
) {
    let name = &t.task.name;
    let limit = limits.max_lag.or_else(|| t.lag_limit());
    let crit = limit.map(|l| l.as_secs().to_string()).unwrap_or_default();
    if let Some(lag) = t.lag_seconds {
        perf.push(format!(
            "{}={}s;;{crit};0;",
            perf_label(&format!("{name} lag")),
            lag.max(0)
        ));
    }
    perf.push(format!(
        "{}={};{};;0;",
        perf_label(&format!("{name} failures")),
        t.failures_in_a_row,
        limits.warn_failures
    ));
    if t.schedule.is_none() {
        problems.push(Problem {
            state: State::Critical,
            short: format!("{name} not scheduled"),
            long: format!(
                "{name} is not scheduled: its frequency {:?} no longer parses; \
                 set it again with `ferry task`",
                t.task.frequency
            ),
        });
    }
    if let Some(limit) = limit {
        // A task that never succeeded is as late as it is old.
        let (age, since) = match (t.lag_seconds, t.last_success) {
            (Some(lag), Some(at)) => (lag, format!("last success {}", time(at))),
            _ => (
                (now - t.task.created_at).num_seconds(),
                format!(
                    "no success since it was added at {}",
                    time(t.task.created_at)
                ),
            ),
        };
        let age = Duration::from_secs(age.max(0).unsigned_abs());
        if age > limit {
            let lag = short(age);
            let limit = short(limit);
            problems.push(Problem {
                state: State::Critical,
                short: format!("{name} lag {lag} > {limit}"),
                long: format!("{name} lag {lag} > {limit} ({since})"),
            });
        }
    }
    if t.failures_in_a_row >= limits.warn_failures {
        let n = t.failures_in_a_row;
        problems.push(Problem {
            state: State::Warning,
            short: format!("{name} failed {n} time(s) in a row"),
            long: format!(
                "{name} failed {n} time(s) in a row: {}",
                t.last_error.as_deref().unwrap_or("no reason recorded")
            ),
        });
    }
}

/// Checks one line; false when it has no limit to be checked against.
fn check_line(
    l: &ReplicaLine,
    limits: Limits,
    problems: &mut Vec<Problem>,
    perf: &mut Vec<String>,
) -> bool {
    let r = &l.newest;
    let name = format!("{}/{}@{}", r.source, r.share, r.pool);
    let limit = limits.max_lag.or_else(|| l.age_limit());
    let crit = limit.map(|l| l.as_secs().to_string()).unwrap_or_default();
    perf.push(format!(
        "{}={}s;;{crit};0;",
        perf_label(&format!("{name} age")),
        l.age_seconds.max(0)
    ));
    let Some(limit) = limit else {
        return false;
    };
    let age = Duration::from_secs(l.age_seconds.max(0).unsigned_abs());
    if age > limit {
        let (age, limit) = (short(age), short(limit));
        problems.push(Problem {
            state: State::Critical,
            short: format!("{name} newest replica {age} old > {limit}"),
            long: format!(
                "{name} newest replica {} arrived {} ago ({}), more than {limit}",
                r.snapshot,
                age,
                time(r.received_at)
            ),
        });
    }
    true
}

/// The two largest units of `d`, zeros left out: `45s`, `3h12m`, `2h`, `1d6h`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    let units = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)];
    let Some(first) = units.iter().position(|(_, n)| s >= *n) else {
        return "0s".to_string();
    };
    let mut out = String::new();
    let mut rest = s;
    for (unit, n) in units.iter().skip(first).take(2) {
        let v = rest / n;
        rest %= n;
        if v > 0 {
            let _ = write!(out, "{v}{unit}");
        }
    }
    out
}

/// Whether the command line asks for `status --check`, so that even a usage or
/// configuration error answers as a monitoring plugin (UNKNOWN, exit 3).
pub fn requested(args: &[std::ffi::OsString]) -> bool {
    let words: Vec<&std::ffi::OsString> = args.iter().take_while(|a| *a != "--").collect();
    words.iter().any(|a| *a == "status") && words.iter().any(|a| *a == "--check")
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
