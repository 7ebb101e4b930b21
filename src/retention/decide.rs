//! Which snapshots of one line (a task's snapshots, or one replica line on a
//! target) retention keeps, and the rule that keeps each: a pure function.

use std::fmt;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};

use super::grid::{Grid, Term, Unit};

/// What a line keeps. A snapshot is kept when any rule keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Always keep the newest this many (at least one is always kept).
    pub newest: u32,
    /// Keep the oldest snapshot of each of the grid's last periods.
    pub grid: Grid,
    /// At most this many are kept, whatever the rules say (the receiver's
    /// `max_replicas_per_line`); protected snapshots count but never go.
    pub cap: Option<u32>,
}

/// A rule that keeps a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Among the newest `n`.
    Newest(u32),
    /// The oldest of its period within the grid term.
    Grid(Term),
    /// Protected by the caller: the common base, or the replica just received.
    Base,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Newest(n) => write!(f, "newest {n}"),
            Rule::Grid(t) => write!(f, "{} ({t})", t.unit.adjective()),
            Rule::Base => f.write_str("common base"),
        }
    }
}

/// Why a snapshot goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// No rule keeps it.
    NoRule,
    /// Rules keep it, but the line is over the receiver's cap.
    OverCap(u32),
}

impl fmt::Display for Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drop::NoRule => f.write_str("no rule keeps it"),
            Drop::OverCap(cap) => write!(f, "over the receiver's cap of {cap} per line"),
        }
    }
}

/// The decision about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Kept, by every rule listed (never empty).
    Keep(Vec<Rule>),
    Delete(Drop),
}

impl Verdict {
    pub fn keeps(&self) -> bool {
        matches!(self, Verdict::Keep(_))
    }
}

impl fmt::Display for Verdict {
    /// `keep (newest 5, daily (7d))` or `delete (no rule keeps it)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Keep(rules) => {
                let rules: Vec<String> = rules.iter().map(Rule::to_string).collect();
                write!(f, "keep ({})", rules.join(", "))
            }
            Verdict::Delete(why) => write!(f, "delete ({why})"),
        }
    }
}

/// Decides a line. `created[i]` is when snapshot `i` was made (btrfs otime),
/// with the line in order oldest first (the order the caller trusts: commit
/// order on a target); `protected[i]` marks what must stay whatever the rules
/// say. Periods are counted back from `now`'s period in `zone`. Returns one
/// verdict per snapshot, in the same order.
///
/// A snapshot dated after `now` (taken before the clock jumped back) sits in
/// a period of its own ahead of the current one, which every grid term keeps:
/// a clock that jumped back never costs the snapshots taken before it did.
pub fn decide<Tz: TimeZone>(
    created: &[DateTime<Utc>],
    protected: &[bool],
    policy: &Policy,
    zone: &Tz,
    now: DateTime<Utc>,
) -> Vec<Verdict> {
    let n = created.len();
    let mut rules: Vec<Vec<Rule>> = vec![Vec::new(); n];
    let newest = policy.newest.max(1);
    let first_newest = n.saturating_sub(usize::try_from(newest).unwrap_or(usize::MAX));
    for r in &mut rules[first_newest..] {
        r.push(Rule::Newest(newest));
    }
    for term in policy.grid.terms() {
        let current = period(now, term.unit, zone);
        let oldest = current.saturating_sub(i64::from(term.count));
        // The oldest snapshot of each period in (oldest, current].
        let mut chosen: std::collections::BTreeMap<i64, usize> = Default::default();
        for (i, at) in created.iter().enumerate() {
            let p = period(*at, term.unit, zone);
            if p <= oldest {
                continue;
            }
            let best = chosen.entry(p).or_insert(i);
            if (created[i], i) < (created[*best], *best) {
                *best = i;
            }
        }
        for i in chosen.into_values() {
            rules[i].push(Rule::Grid(*term));
        }
    }
    for (i, r) in rules.iter_mut().enumerate() {
        if protected.get(i).copied().unwrap_or(false) {
            r.push(Rule::Base);
        }
    }
    let mut verdicts: Vec<Verdict> = rules
        .into_iter()
        .map(|r| {
            if r.is_empty() {
                Verdict::Delete(Drop::NoRule)
            } else {
                Verdict::Keep(r)
            }
        })
        .collect();
    if let Some(cap) = policy.cap {
        let cap_len = usize::try_from(cap.max(1)).unwrap_or(usize::MAX);
        let mut kept = verdicts.iter().filter(|v| v.keeps()).count();
        // Over the cap, the oldest kept go first; protected ones never.
        for (i, v) in verdicts.iter_mut().enumerate() {
            if kept <= cap_len {
                break;
            }
            if v.keeps() && !protected.get(i).copied().unwrap_or(false) {
                *v = Verdict::Delete(Drop::OverCap(cap));
                kept -= 1;
            }
        }
    }
    verdicts
}

/// The index of the period of `unit` that `at` falls in, in `zone`'s calendar:
/// consecutive periods have consecutive indexes. Weeks start on Monday
/// (0001-01-01, day 1 of the common era, was a Monday).
pub fn period<Tz: TimeZone>(at: DateTime<Utc>, unit: Unit, zone: &Tz) -> i64 {
    let local = at.with_timezone(zone).naive_local();
    let day = i64::from(local.date().num_days_from_ce());
    match unit {
        Unit::Hour => day * 24 + i64::from(local.hour()),
        Unit::Day => day,
        Unit::Week => (day - 1).div_euclid(7),
        Unit::Month => i64::from(local.year()) * 12 + i64::from(local.month0()),
        Unit::Year => i64::from(local.year()),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
