//! Time zones: IANA names as `--timezone` takes them, the system's own zone
//! (cron's default), and local time as tables show it.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::error::ScheduleError;

/// Parses an IANA zone name (`Europe/Berlin`, `UTC`), exactly as spelled in
/// the tz database; `--timezone` on `task add` and `task set` both use this.
///
/// # Errors
///
/// [`ScheduleError::BadZone`] for anything else, POSIX rule strings included.
pub fn parse_zone(name: &str) -> Result<Tz, ScheduleError> {
    let name = name.trim();
    name.parse::<Tz>().map_err(|_| ScheduleError::BadZone {
        zone: name.to_string(),
    })
}

/// The zone cron schedules without `--timezone` use, and tables show times in:
/// `TZ` when it names an IANA zone (an optional leading `:` as glibc allows),
/// else the zone `/etc/localtime` links to (through `iana-time-zone`, which also
/// reads `/etc/timezone`), else UTC. Read once per process: a daemon keeps the
/// zone it started with, so a schedule never shifts under a running scheduler.
pub fn system_zone() -> Tz {
    static ZONE: OnceLock<Tz> = OnceLock::new();
    *ZONE.get_or_init(|| resolve_system_zone(std::env::var("TZ").ok().as_deref()))
}

/// [`system_zone`] for a given `TZ` value (`None`: unset).
fn resolve_system_zone(tz: Option<&str>) -> Tz {
    match tz {
        // POSIX: an empty TZ means UTC.
        Some("") => Tz::UTC,
        Some(value) => match parse_zone(value.trim_start_matches(':')) {
            Ok(zone) => zone,
            Err(_) => {
                tracing::warn!(
                    tz = value,
                    "TZ does not name an IANA zone; using /etc/localtime's zone"
                );
                from_localtime()
            }
        },
        None => from_localtime(),
    }
}

fn from_localtime() -> Tz {
    match iana_time_zone::get_timezone() {
        Ok(name) => parse_zone(&name).unwrap_or_else(|_| {
            tracing::warn!(zone = %name, "the system's zone is unknown to the tz database; using UTC");
            Tz::UTC
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the system's time zone; using UTC");
            Tz::UTC
        }
    }
}

/// `t` in the system's zone, to the second, with the zone's abbreviation:
/// `2026-03-29 03:00:00 CEST`. For people; JSON stays RFC 3339 UTC.
pub fn local_time(t: DateTime<Utc>) -> String {
    let zone = system_zone();
    match super::slot::local_of(zone, t) {
        Some(_) => t
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        // Beyond chrono's range in this zone: only a hand-edited row gets here.
        None => t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_iana_names() {
        assert_eq!(parse_zone("Europe/Berlin"), Ok(Tz::Europe__Berlin));
        assert_eq!(parse_zone("UTC"), Ok(Tz::UTC));
        for bad in [
            "Mars/Olympus",
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "",
            "europe/berlin/x",
        ] {
            let err = parse_zone(bad).expect_err(bad);
            assert!(err.to_string().contains("Europe/Berlin"), "{err}");
        }
    }

    #[test]
    fn the_system_zone_comes_from_tz_then_localtime_then_utc() {
        assert_eq!(resolve_system_zone(Some("Asia/Tokyo")), Tz::Asia__Tokyo);
        assert_eq!(resolve_system_zone(Some(":Asia/Tokyo")), Tz::Asia__Tokyo);
        assert_eq!(resolve_system_zone(Some("")), Tz::UTC);
        // Not a name: whatever /etc/localtime says, which is never a panic.
        let _ = resolve_system_zone(Some("CET-1CEST"));
        let _ = resolve_system_zone(None);
    }
}
