//! Reading what btrfs-progs prints. Kept apart from the commands so it is tested on captured text.

use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::subvolume::Subvolume;

/// Why `btrfs subvolume show` output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseShowError {
    #[error("no {0} field")]
    Missing(&'static str),
    #[error("UUID is `-`")]
    NoUuid,
    #[error("Generation `{0}` is not a number")]
    Generation(String),
    #[error("{field} `{value}` is not a number")]
    Number { field: &'static str, value: String },
    #[error("{field} `{value}`: {source}")]
    Uuid {
        field: &'static str,
        value: String,
        source: uuid::Error,
    },
    #[error("Creation time `{value}`: {source}")]
    Time {
        value: String,
        source: chrono::ParseError,
    },
}

/// Parses the output of `btrfs subvolume show`.
///
/// Fields are `Key: value` lines in any order, separated by any mix of tabs and spaces;
/// `-` means "none". Unknown fields are ignored so a newer btrfs-progs that adds some
/// does not break us. The snapshot list under `Snapshot(s):` holds names, which may
/// contain anything, so its lines are never read as fields.
///
/// # Errors
///
/// [`ParseShowError`] when a field ferry needs (Name, UUID, Parent UUID, Received
/// UUID, Flags, Generation) is missing or a value does not parse.
pub fn parse_show(path: &Path, text: &str) -> Result<Subvolume, ParseShowError> {
    let mut name = None;
    let mut uuid = None;
    let mut parent_uuid = None;
    let mut received_uuid = None;
    let mut flags = None;
    let mut generation = None;
    let mut created = None;
    let mut otransid = None;
    let mut stransid = None;
    let mut rtransid = None;
    // Indentation of the `Snapshot(s):` line while inside its list.
    let mut in_list: Option<usize> = None;

    // The first line is the path from the filesystem's top level, not a field.
    for line in text.lines().skip(1) {
        let indent = line.len() - line.trim_start().len();
        if let Some(list_indent) = in_list {
            if indent > list_indent || line.trim().is_empty() {
                continue;
            }
            in_list = None;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Name" => name = Some(value.to_string()),
            "UUID" => uuid = Some(value.to_string()),
            "Parent UUID" => parent_uuid = Some(value.to_string()),
            "Received UUID" => received_uuid = Some(value.to_string()),
            "Flags" => flags = Some(value.to_string()),
            "Generation" => generation = Some(value.to_string()),
            "Creation time" => created = Some(value.to_string()),
            "Gen at creation" => otransid = Some(value.to_string()),
            "Send transid" => stransid = Some(value.to_string()),
            "Receive transid" => rtransid = Some(value.to_string()),
            "Snapshot(s)" => in_list = Some(indent),
            _ => {}
        }
    }

    let name = name.ok_or(ParseShowError::Missing("Name"))?;
    let uuid = optional_uuid("UUID", uuid.as_deref())?.ok_or(ParseShowError::NoUuid)?;
    let generation = generation.ok_or(ParseShowError::Missing("Generation"))?;
    let generation = generation
        .parse()
        .map_err(|_| ParseShowError::Generation(generation))?;
    let flags = flags.ok_or(ParseShowError::Missing("Flags"))?;
    let otransid = number(
        "Gen at creation",
        otransid.ok_or(ParseShowError::Missing("Gen at creation"))?,
    )?;
    // Older btrfs-progs print no send/receive transids; only received
    // subvolumes have them anyway.
    let stransid = stransid.map_or(Ok(0), |v| number("Send transid", v))?;
    let rtransid = rtransid.map_or(Ok(0), |v| number("Receive transid", v))?;
    Ok(Subvolume {
        path: path.to_path_buf(),
        name,
        uuid,
        parent_uuid: optional_uuid("Parent UUID", parent_uuid.as_deref())?,
        received_uuid: optional_uuid("Received UUID", received_uuid.as_deref())?,
        readonly: flags
            .split(|c: char| c == ',' || c.is_whitespace())
            .any(|f| f == "readonly"),
        generation,
        ctransid: None,
        created: optional_time(created.as_deref())?,
        otransid,
        stransid,
        rtransid,
    })
}

fn number(field: &'static str, value: String) -> Result<u64, ParseShowError> {
    value
        .parse()
        .map_err(|_| ParseShowError::Number { field, value })
}

fn optional_uuid(field: &'static str, value: Option<&str>) -> Result<Option<Uuid>, ParseShowError> {
    match value {
        None => Err(ParseShowError::Missing(field)),
        Some("-") => Ok(None),
        Some(v) => Uuid::parse_str(v)
            .map(Some)
            .map_err(|source| ParseShowError::Uuid {
                field,
                value: v.to_string(),
                source,
            }),
    }
}

/// btrfs prints local time with its offset, e.g. `2026-11-21 05:43:21 +0000`.
fn optional_time(value: Option<&str>) -> Result<Option<DateTime<Utc>>, ParseShowError> {
    match value {
        None | Some("-") => Ok(None),
        Some(v) => DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S %z")
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|source| ParseShowError::Time {
                value: v.to_string(),
                source,
            }),
    }
}

/// The subvolume `btrfs receive` created, from its `At subvol NAME` (full stream) or
/// `At snapshot NAME` (incremental) line. The last one wins, as the stream's last
/// subvolume is the one finished at exit.
pub fn received_name(output: &str) -> Option<String> {
    output
        .lines()
        .filter_map(|l| {
            l.strip_prefix("At subvol ")
                .or_else(|| l.strip_prefix("At snapshot "))
        })
        .map(str::to_string)
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // Captured from btrfs-progs v6.2.
    const SNAPSHOT: &str = "snaps/s1
\tName: \t\t\ts1
\tUUID: \t\t\tac2e1e7d-783e-c949-9b31-45c63a2c8167
\tParent UUID: \t\t5fe3caf3-e7ca-014f-81e0-a20d484eba63
\tReceived UUID: \t\t-
\tCreation time: \t\t2026-11-21 05:43:21 +0000
\tSubvolume ID: \t\t257
\tGeneration: \t\t7
\tGen at creation: \t7
\tParent ID: \t\t5
\tTop level ID: \t\t5
\tFlags: \t\t\treadonly
\tSend transid: \t\t0
\tSend time: \t\t2026-11-21 05:43:21 +0000
\tReceive transid: \t0
\tReceive time: \t\t-
\tSnapshot(s):
";

    const SHARE: &str = "share
\tName: \t\t\tshare
\tUUID: \t\t\t5fe3caf3-e7ca-014f-81e0-a20d484eba63
\tParent UUID: \t\t-
\tReceived UUID: \t\t-
\tCreation time: \t\t2026-11-21 05:43:21 +0000
\tSubvolume ID: \t\t256
\tGeneration: \t\t7
\tGen at creation: \t7
\tParent ID: \t\t5
\tTop level ID: \t\t5
\tFlags: \t\t\t-
\tSend transid: \t\t0
\tSend time: \t\t2026-11-21 05:43:21 +0000
\tReceive transid: \t0
\tReceive time: \t\t-
\tSnapshot(s):
\t\t\t\tsnaps/s1
\t\t\t\tsnaps/Flags: readonly
\tQuota group:\t\tn/a
";

    #[test]
    fn parses_a_readonly_snapshot() {
        let s = parse_show(Path::new("/m/snaps/s1"), SNAPSHOT).unwrap();
        assert_eq!(s.path, Path::new("/m/snaps/s1"));
        assert_eq!(s.name, "s1");
        assert_eq!(
            s.uuid,
            Uuid::parse_str("ac2e1e7d-783e-c949-9b31-45c63a2c8167").unwrap()
        );
        assert_eq!(
            s.parent_uuid,
            Some(Uuid::parse_str("5fe3caf3-e7ca-014f-81e0-a20d484eba63").unwrap())
        );
        assert_eq!(s.received_uuid, None);
        assert!(s.readonly);
        assert_eq!(s.generation, 7);
        assert_eq!((s.otransid, s.stransid, s.rtransid), (7, 0, 0));
        assert_eq!(s.ctransid, None, "btrfs-progs does not print it");
        assert_eq!(
            s.created,
            Some(Utc.with_ymd_and_hms(2026, 11, 21, 5, 43, 21).unwrap())
        );
    }

    #[test]
    fn snapshot_names_are_not_read_as_fields() {
        let s = parse_show(Path::new("share"), SHARE).unwrap();
        assert_eq!(s.name, "share");
        assert!(!s.readonly, "a snapshot named `Flags: readonly` leaked in");
        assert_eq!(s.parent_uuid, None);
    }

    #[test]
    fn field_order_and_spacing_do_not_matter() {
        let text = "x\n  Flags:  readonly\n Generation:12\n Gen at creation: 11\n\tReceived UUID:\tac2e1e7d-783e-c949-9b31-45c63a2c8167\n\
                    Name:   x y\n    UUID: 5fe3caf3-e7ca-014f-81e0-a20d484eba63\n  Parent UUID:  -\n\
                    \tCreation time:\t2026-01-02 03:04:05 +0200\n  New field: whatever\n";
        let s = parse_show(Path::new("x"), text).unwrap();
        assert_eq!(s.name, "x y");
        assert_eq!(s.generation, 12);
        assert!(s.readonly);
        assert!(s.received_uuid.is_some());
        assert_eq!(
            s.created,
            Some(Utc.with_ymd_and_hms(2026, 1, 2, 1, 4, 5).unwrap())
        );
    }

    #[test]
    fn missing_or_bad_fields_are_errors_not_defaults() {
        let no_uuid = SNAPSHOT.replace("\tUUID: \t\t\tac2e1e7d-783e-c949-9b31-45c63a2c8167\n", "");
        assert!(parse_show(Path::new("s"), &no_uuid)
            .unwrap_err()
            .to_string()
            .contains("UUID"));
        let bad_gen = SNAPSHOT.replace("Generation: \t\t7", "Generation: \t\tseven");
        assert!(parse_show(Path::new("s"), &bad_gen)
            .unwrap_err()
            .to_string()
            .contains("seven"));
        assert!(parse_show(Path::new("s"), "").is_err());
    }

    #[test]
    fn finds_the_received_name() {
        assert_eq!(received_name("At subvol s1\n").as_deref(), Some("s1"));
        assert_eq!(
            received_name("noise\nAt snapshot share_t_20260101T000000Z\n").as_deref(),
            Some("share_t_20260101T000000Z")
        );
        assert_eq!(received_name("ERROR: something\n"), None);
    }
}
