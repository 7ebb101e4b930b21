//! Time zones that grid periods are counted in: IANA names, so that a sender
//! can tell its receiver which zone its days begin in. (Which zone a task
//! uses is the sender's call: its `--timezone`, else the system's.)

/// A time zone from the IANA database (`Europe/Berlin`, `UTC`).
pub type Zone = chrono_tz::Tz;

/// The zone named `name` (an IANA name such as `Europe/Berlin`), or `None`
/// when this build's zone database does not know it.
pub fn parse_zone(name: &str) -> Option<Zone> {
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iana_names_parse_and_unknown_ones_do_not() {
        assert_eq!(parse_zone("Europe/Berlin"), Some(chrono_tz::Europe::Berlin));
        assert_eq!(parse_zone("UTC"), Some(Zone::UTC));
        assert_eq!(parse_zone("Mars/Olympus"), None);
    }
}
