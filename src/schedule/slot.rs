//! When a cron pattern fires in a time zone, across DST transitions: each real
//! instant whose local time matches, with cron's rules for the hour that repeats
//! or vanishes.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::{Cron, JobType};

/// More than any zone's DST shift (2 h at most, Antarctica/Troll): local
/// times of real instants this far apart cannot be out of order.
const SHIFT: TimeDelta = TimeDelta::hours(4);

/// Local matches looked at before giving up; a pattern at least a minute apart
/// needs under 500 to cover the window around one slot.
const MAX_MATCHES: usize = 20_000;

/// The first instant strictly after `after` at which `cron` fires in `zone`,
/// or `None` when it never fires again (or the search would leave chrono's range).
///
/// DST rules, as Vixie cron and croner's own spec have them:
/// - a local time that occurs twice (fall back) fires once for a fixed-time
///   job (one hour, minute and second: `30 2 * * *`), at its first
///   occurrence, and at both occurrences for an interval or wildcard job
///   (`*/15 * * * *`), whose runs stay evenly spread in real time;
/// - a local time that does not exist (spring forward) fires a fixed-time
///   job at the first instant after the gap, and is skipped by an interval job.
///
/// croner resolves each local match itself, but hands back the two runs of a
/// repeated hour out of real-time order (02:00 CEST, 02:00 CET, 02:01 CEST...),
/// so this searches local matches near `after` and keeps the earliest real one.
pub fn next_slot(cron: &Cron, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let fixed = cron.determine_job_type() == JobType::FixedTime;
    let local_after = local_of(zone, after)?;
    // Local time can step back by up to SHIFT, so matches from before the
    // local reading of `after` may still be later in real time.
    let start = local_after.checked_sub_signed(SHIFT)?.and_utc();
    let mut best: Option<(DateTime<Utc>, NaiveDateTime)> = None;
    for local in cron.iter_after(start).take(MAX_MATCHES) {
        let local = local.naive_utc();
        if let Some((_, at)) = best {
            // Past this, every later local match is later in real time too.
            if local > at.checked_add_signed(SHIFT)? {
                break;
            }
        }
        for instant in instants(zone, local, fixed) {
            if instant > after && best.is_none_or(|(b, _)| instant < b) {
                best = Some((instant, local));
            }
        }
    }
    best.map(|(instant, _)| instant)
}

/// `t`'s local time in `zone`, or `None` at the edges of chrono's range
/// (`naive_local` panics there).
pub fn local_of(zone: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let offset = zone.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc().checked_add_offset(offset)
}

/// The real instants at which local time `local` fires, under the rules above.
fn instants(zone: Tz, local: NaiveDateTime, fixed: bool) -> Vec<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
        LocalResult::Ambiguous(first, second) => {
            if fixed {
                vec![first.with_timezone(&Utc)]
            } else {
                vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
            }
        }
        // The local match already fits the pattern's day; the job runs after
        // the gap only if that is still the same day.
        LocalResult::None if fixed => after_gap(zone, local)
            .filter(|t| local_of(zone, *t).is_some_and(|l| l.date() == local.date()))
            .into_iter()
            .collect(),
        LocalResult::None => Vec::new(),
    }
}

/// The first real instant after the local gap that `local` falls in.
fn after_gap(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let valid = |n: NaiveDateTime| match zone.from_local_datetime(&n) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => None,
    };
    // Minutes first (gaps are whole minutes in practice), then the seconds
    // before the first valid minute, for zones whose offsets were not.
    let mut minute = local;
    for _ in 0..(SHIFT.num_minutes()) {
        minute = minute.checked_add_signed(TimeDelta::minutes(1))?;
        if valid(minute).is_some() {
            let mut second = minute.checked_sub_signed(TimeDelta::seconds(59))?;
            while second < minute {
                if let Some(t) = valid(second).filter(|_| second > local) {
                    return Some(t);
                }
                second = second.checked_add_signed(TimeDelta::seconds(1))?;
            }
            return valid(minute);
        }
    }
    None
}
