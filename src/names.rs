//! Validation of the names users and peers give to things (appliances, pools, tasks,
//! shares, snapshots) before any of them becomes part of a path, a row or a message.

use chrono::{DateTime, NaiveDateTime, Utc};
use thiserror::Error;

/// Why a name was refused. The message names the rule, so the user can fix it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{kind} name is empty")]
    Empty { kind: &'static str },
    #[error("{kind} name {name:?} is longer than {max} bytes")]
    TooLong {
        kind: &'static str,
        name: String,
        max: usize,
    },
    #[error("{kind} name {name:?} {rule}; use letters, digits, '.', '_', '-' or '@'")]
    Invalid {
        kind: &'static str,
        name: String,
        rule: &'static str,
    },
}

/// Longest name accepted. Snapshot names are `<share>_<task>_<timestamp>` and must
/// stay under btrfs's 255-byte limit, so shares and tasks get a third of it each.
pub const MAX_NAME: usize = 80;

/// Longest snapshot name: two names, two separators and a 16-byte timestamp.
pub const MAX_SNAPSHOT_NAME: usize = 2 * MAX_NAME + 2 + 16;

/// Checks a name of something the user creates (appliance, pool, task) or a share name.
///
/// The rules are strict on purpose: these names end up in paths on the receiver,
/// in SQL rows and in log lines, so only a portable character set is allowed.
pub fn validate(kind: &'static str, name: &str) -> Result<(), NameError> {
    validate_with_max(kind, name, MAX_NAME)
}

/// Checks a snapshot name received over the wire or found on disk.
pub fn validate_snapshot(name: &str) -> Result<(), NameError> {
    validate_with_max("snapshot", name, MAX_SNAPSHOT_NAME)
}

fn validate_with_max(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    let invalid = |rule| NameError::Invalid {
        kind,
        name: name.escape_debug().to_string(),
        rule,
    };
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            kind,
            name: name.chars().take(max).collect::<String>() + "...",
            max,
        });
    }
    if name.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    if name.contains('/') {
        return Err(invalid("contains '/'"));
    }
    if name.contains("..") {
        return Err(invalid("contains '..'"));
    }
    if name.starts_with('.') {
        return Err(invalid("starts with '.'"));
    }
    if name.starts_with('-') {
        return Err(invalid("starts with '-'"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("contains a control character"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(invalid("contains a character that is not allowed"));
    }
    Ok(())
}

/// The timestamp in snapshot names: UTC, to the second, sortable as text.
const SNAPSHOT_TIME: &str = "%Y%m%dT%H%M%SZ";

/// The name of a task's snapshot taken at `at`: `<share>_<task>_<yyyymmddThhmmssZ>`.
pub fn snapshot_name(share: &str, task: &str, at: DateTime<Utc>) -> String {
    format!("{share}_{task}_{}", at.format(SNAPSHOT_TIME))
}

/// When a snapshot of this share and task was taken, or `None` when `name` is not
/// one of theirs. Exact: task `a` does not claim the snapshots of task `a_b`.
pub fn snapshot_time(share: &str, task: &str, name: &str) -> Option<DateTime<Utc>> {
    let stamp = name
        .strip_prefix(share)?
        .strip_prefix('_')?
        .strip_prefix(task)?
        .strip_prefix('_')?;
    NaiveDateTime::parse_from_str(stamp, SNAPSHOT_TIME)
        .ok()
        .filter(|t| t.format(SNAPSHOT_TIME).to_string() == stamp)
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["photos", "nas-2", "a.b_c@d", "Share01", "x"] {
            assert_eq!(validate("share", n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_names_that_could_escape_a_path() {
        let cases = [
            ("", "is empty"),
            ("a/b", "'/'"),
            ("..", "'..'"),
            ("a..b", "'..'"),
            (".hidden", "starts with '.'"),
            ("-rf", "starts with '-'"),
            ("a\0b", "NUL"),
            ("a\nb", "control character"),
            ("a b", "not allowed"),
            ("caf\u{e9}", "not allowed"),
        ];
        for (name, why) in cases {
            let err = validate("share", name).expect_err(name).to_string();
            assert!(err.contains(why), "{name:?}: {err}");
        }
    }

    #[test]
    fn refuses_over_long_names() {
        let long = "a".repeat(MAX_NAME + 1);
        assert!(matches!(
            validate("task", &long),
            Err(NameError::TooLong { .. })
        ));
        assert_eq!(validate("task", &"a".repeat(MAX_NAME)), Ok(()));
        assert!(validate_snapshot(&"a".repeat(MAX_SNAPSHOT_NAME)).is_ok());
        assert!(validate_snapshot(&"a".repeat(MAX_SNAPSHOT_NAME + 1)).is_err());
    }

    #[test]
    fn snapshot_names_belong_to_exactly_one_task() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T05:37:56Z")
            .expect("valid")
            .with_timezone(&Utc);
        let name = snapshot_name("photos", "a", at);
        assert_eq!(name, "photos_a_20261121T053756Z");
        assert_eq!(snapshot_time("photos", "a", &name), Some(at));
        let other = snapshot_name("photos", "a_b", at);
        assert_eq!(snapshot_time("photos", "a", &other), None);
        assert_eq!(snapshot_time("photos", "a", "photos_a_2026"), None);
        assert_eq!(snapshot_time("photo", "s_a", &name), None);
        assert!(validate_snapshot(&name).is_ok());
    }
}
