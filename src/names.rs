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
    #[error("{kind} name {name:?} {rule}; it must be one safe path component: no '/', NUL or control characters, not starting with '.'")]
    Unsafe {
        kind: &'static str,
        name: String,
        rule: &'static str,
    },
}

/// Longest name accepted. Snapshot names are `<share>_<task>_<timestamp>` and must
/// stay under btrfs's 255-byte limit, so shares and tasks get a third of it each.
pub const MAX_NAME: usize = 80;

/// Longest path component Linux and btrfs take, in bytes: the limit of share,
/// replica and snapshot names.
pub const MAX_COMPONENT: usize = 255;

/// Longest snapshot name.
pub const MAX_SNAPSHOT_NAME: usize = MAX_COMPONENT;

/// Room a snapshot name keeps for the `-N` that tells apart two snapshots
/// named in one second (see `sender::plan::unique_name`).
const SUFFIX_ROOM: usize = 6;

/// Checks a name of something the user creates (appliance, pool, task).
///
/// The rules are strict on purpose: these names end up in paths on the receiver,
/// in SQL rows and in log lines, so only a portable character set is allowed.
///
/// # Errors
///
/// [`NameError::Empty`], [`NameError::TooLong`] over [`MAX_NAME`] bytes, or
/// [`NameError::Invalid`] naming the character or rule broken.
pub fn validate(kind: &'static str, name: &str) -> Result<(), NameError> {
    validate_with_max(kind, name, MAX_NAME)
}

/// Checks a share name (the name of its replica line on the target): any
/// single path component that is safe in a path, a row and a log line. Spaces
/// and letters beyond ASCII are fine (`My Photos`, `fotos-ñ`).
///
/// # Errors
///
/// As [`validate_component`].
pub fn validate_share(name: &str) -> Result<(), NameError> {
    validate_component("share", name)
}

/// Checks a snapshot name received over the wire or found on disk: the same
/// rules as [`validate_share`].
///
/// # Errors
///
/// As [`validate_component`].
pub fn validate_snapshot(name: &str) -> Result<(), NameError> {
    validate_component("snapshot", name)
}

/// The rules a directory name on the receiver needs, and no more: not empty,
/// at most [`MAX_COMPONENT`] bytes, no `/` or NUL (which would make it a
/// path, or cut it short), no control characters (which would garble logs),
/// and no leading `.`, which excludes `.` and `..` and keeps the receiver's
/// own dot-names (`.ferry`, `.latest.tmp-*`) apart.
///
/// # Errors
///
/// [`NameError::Empty`], [`NameError::TooLong`] over [`MAX_COMPONENT`] bytes,
/// or [`NameError::Unsafe`] naming the rule broken.
pub fn validate_component(kind: &'static str, name: &str) -> Result<(), NameError> {
    let unsafe_ = |rule| NameError::Unsafe {
        kind,
        name: name.escape_debug().to_string(),
        rule,
    };
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > MAX_COMPONENT {
        let mut end = MAX_COMPONENT.min(40);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        return Err(NameError::TooLong {
            kind,
            name: format!("{}...", name[..end].escape_debug()),
            max: MAX_COMPONENT,
        });
    }
    if name.contains('\0') {
        return Err(unsafe_("contains a NUL byte"));
    }
    if name.contains('/') {
        return Err(unsafe_("contains '/'"));
    }
    if name.starts_with('.') {
        return Err(unsafe_("starts with '.'"));
    }
    if name.chars().any(char::is_control) {
        return Err(unsafe_("contains a control character"));
    }
    Ok(())
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
///
/// A snapshot name must fit in [`MAX_COMPONENT`] bytes with room for a `-N`:
/// a share name too long for that is cut short here (at a character
/// boundary). Task names are at most [`MAX_NAME`] bytes, so a share keeps at
/// least 151 of its bytes.
pub fn snapshot_name(share: &str, task: &str, at: DateTime<Utc>) -> String {
    let stamp = at.format(SNAPSHOT_TIME).to_string();
    let room = MAX_COMPONENT.saturating_sub(task.len() + stamp.len() + 2 + SUFFIX_ROOM);
    let mut end = share.len().min(room);
    while !share.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}_{task}_{stamp}", &share[..end])
}

/// When a snapshot was taken, by the timestamp its name ends with
/// (`..._<yyyymmddThhmmssZ>`, or with a `-N` that tells apart two snapshots
/// named in one second). For display only: order and ownership come from
/// elsewhere.
pub fn snapshot_taken(name: &str) -> Option<DateTime<Utc>> {
    let (_, last) = name.rsplit_once('_')?;
    let stamp = match last.split_once('-') {
        Some((stamp, n)) if n.parse::<u32>().is_ok() => stamp,
        Some(_) => return None,
        None => last,
    };
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
    fn any_safe_path_component_is_a_share_name() {
        for n in [
            "My Photos",
            "fotos-ñ",
            "a..b",
            "-rf",
            "x@y (2)",
            "日本語",
            &"a".repeat(255),
        ] {
            assert_eq!(validate_share(n), Ok(()), "{n}");
        }
        let cases = [
            ("", "is empty"),
            ("a/b", "'/'"),
            (".", "starts with '.'"),
            ("..", "starts with '.'"),
            (".hidden", "starts with '.'"),
            ("a\0b", "NUL"),
            ("a\nb", "control character"),
            ("a\u{7f}b", "control character"),
        ];
        for (name, why) in cases {
            let err = validate_share(name).expect_err(name).to_string();
            assert!(err.contains(why), "{name:?}: {err}");
        }
        let long = "ñ".repeat(128);
        assert!(matches!(
            validate_share(&long),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn snapshot_names_fit_in_a_path_component_whatever_the_share_name() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T05:37:56Z")
            .expect("valid")
            .with_timezone(&Utc);
        let task = "t".repeat(MAX_NAME);
        let share = "ñ".repeat(127);
        let name = snapshot_name(&share, &task, at);
        assert!(name.len() + SUFFIX_ROOM <= MAX_COMPONENT, "{}", name.len());
        assert!(validate_snapshot(&format!("{name}-99999")).is_ok());
        assert!(name.ends_with(&format!("_{task}_20261121T053756Z")));
        assert_eq!(snapshot_taken(&name), Some(at));
        assert_eq!(
            snapshot_name("My Photos", "t", at),
            "My Photos_t_20261121T053756Z"
        );
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
    fn snapshot_names_say_share_task_and_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T05:37:56Z")
            .expect("valid")
            .with_timezone(&Utc);
        let name = snapshot_name("photos", "a", at);
        assert_eq!(name, "photos_a_20261121T053756Z");
        assert!(validate_snapshot(&name).is_ok());
        assert_eq!(snapshot_taken(&name), Some(at));
        assert_eq!(snapshot_taken(&format!("{name}-2")), Some(at));
        assert_eq!(snapshot_taken(&format!("{name}-x")), None);
        assert_eq!(snapshot_taken("photos_a_2026"), None);
    }
}
