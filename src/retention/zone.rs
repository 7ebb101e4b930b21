//! Time zones that grid periods are counted in: IANA names, so that a sender
//! can tell its receiver which zone its days begin in.

/// A time zone from the IANA database (`Europe/Berlin`, `UTC`).
pub type Zone = chrono_tz::Tz;

/// The zone named `name` (an IANA name such as `Europe/Berlin`), or `None`
/// when this build's zone database does not know it.
pub fn parse_zone(name: &str) -> Option<Zone> {
    name.parse().ok()
}

/// This system's local zone (`/etc/localtime`, or `TZ`), as an IANA zone.
/// UTC when the system names none or one this build does not know: periods
/// then begin at midnight UTC, which is logged once per lookup.
pub fn local_zone() -> Zone {
    match iana_time_zone::get_timezone() {
        Ok(name) => parse_zone(&name).unwrap_or_else(|| {
            tracing::warn!(zone = %name, "unknown local time zone; counting retention periods in UTC");
            Zone::UTC
        }),
        Err(e) => {
            tracing::debug!(error = %e, "no local time zone; counting retention periods in UTC");
            Zone::UTC
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iana_names_parse_and_unknown_ones_do_not() {
        assert_eq!(parse_zone("Europe/Berlin"), Some(chrono_tz::Europe::Berlin));
        assert_eq!(parse_zone("UTC"), Some(Zone::UTC));
        assert_eq!(parse_zone("Mars/Olympus"), None);
        // Whatever the machine says, it is a zone.
        let _ = local_zone();
    }
}
