//! Send and receive history: one row per attempt, opened as `running` and finished
//! as `succeeded`, `failed` or `skipped` with the reason a person needs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;
use uuid::Uuid;

use super::db::{now, DbUuid, Result, Store, Ts};

/// Declares a text-valued enum column with its exact database and JSON spelling.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($text => Ok($name::$variant),)+ other => Err(other.to_string()) }
            }
        }
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|s| FromSqlError::Other(
                    format!("unknown {} {s:?}", stringify!($name)).into()))
            }
        }
    };
}

text_enum!(
    /// The outcome of one attempt.
    Status { Running = "running", Succeeded = "succeeded", Failed = "failed", Skipped = "skipped" }
);
text_enum!(
    /// Whether a stream carried the whole snapshot or the difference to a parent.
    Kind { Full = "full", Incremental = "incremental" }
);

/// One send attempt, as `ferry history send` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendRow {
    pub id: i64,
    pub task: String,
    pub target: String,
    pub share: String,
    pub snapshot: Option<String>,
    pub parent: Option<String>,
    pub kind: Option<Kind>,
    pub status: Status,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub stream_bytes: u64,
    pub wire_bytes: u64,
    pub received_uuid: Option<Uuid>,
}

/// One receive attempt, as `ferry history receive` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiveRow {
    pub id: i64,
    pub source: String,
    pub source_uuid: Option<Uuid>,
    pub share: String,
    pub pool: String,
    pub snapshot: String,
    pub parent: Option<String>,
    pub kind: Option<Kind>,
    pub status: Status,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub stream_bytes: u64,
    pub wire_bytes: u64,
    pub received_uuid: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewSend<'a> {
    pub task_id: Option<i64>,
    pub task: &'a str,
    pub target: &'a str,
    pub share: &'a str,
}

#[derive(Debug, Clone)]
pub struct NewReceive<'a> {
    pub source: &'a str,
    pub source_uuid: Option<Uuid>,
    pub share: &'a str,
    pub pool: &'a str,
    pub snapshot: &'a str,
    pub parent: Option<&'a str>,
    pub kind: Kind,
}

#[derive(Debug, Clone, Default)]
pub struct SendFilter<'a> {
    pub task: Option<&'a str>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct ReceiveFilter<'a> {
    pub source: Option<&'a str>,
    pub limit: Option<u32>,
}

/// How a row is closed.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    pub status: Status,
    /// Required for failures and skips: no silent outcome.
    pub error: Option<&'a str>,
    pub received_uuid: Option<Uuid>,
    /// Final (stream, wire) byte counts, when the caller has them.
    pub bytes: Option<(u64, u64)>,
}

/// The two history tables share their lifecycle columns; these name them.
#[derive(Clone, Copy)]
pub(super) enum Table {
    Send,
    Receive,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Send => "send_history",
            Table::Receive => "receive_history",
        }
    }
}

impl Store {
    pub(super) fn set_progress(&self, t: Table, id: i64, stream: u64, wire: u64) -> Result<()> {
        self.conn().execute(
            &format!(
                "UPDATE {} SET stream_bytes = ?2, wire_bytes = ?3 WHERE id = ?1",
                t.name()
            ),
            (id, stream, wire),
        )?;
        Ok(())
    }

    /// Closes a row that is still `running`; returns false when it was already
    /// closed (say, by a daemon that took it for a crash's leftover), which is
    /// then left as it was.
    pub(super) fn finish(&self, t: Table, id: i64, f: &Finish<'_>) -> Result<bool> {
        let error = match (f.status, f.error) {
            (Status::Failed | Status::Skipped, None) => Some("no reason recorded"),
            (_, e) => e,
        };
        let (stream, wire) = f.bytes.map_or((None, None), |(s, w)| (Some(s), Some(w)));
        let n = self.conn().execute(
            &format!(
                "UPDATE {} SET status = ?2, error = ?3, received_uuid = ?4, ended_at = ?5,
                     stream_bytes = coalesce(?6, stream_bytes), wire_bytes = coalesce(?7, wire_bytes)
                 WHERE id = ?1 AND status = 'running'",
                t.name()
            ),
            rusqlite::params![
                id,
                f.status,
                error,
                f.received_uuid.map(DbUuid),
                Ts(now()),
                stream,
                wire,
            ],
        )?;
        Ok(n > 0)
    }
}

/// SQLite's "no limit" is -1.
pub(super) fn limit(limit: Option<u32>) -> i64 {
    limit.map_or(-1, i64::from)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::db::in_memory;
    use super::*;

    fn send(task: &str) -> NewSend<'_> {
        NewSend {
            task_id: None,
            task,
            target: "nas2",
            share: "photos",
        }
    }

    #[test]
    fn a_send_row_goes_from_running_to_succeeded() {
        let store = in_memory();
        let id = store.begin_send(&send("photos")).expect("begin");
        store
            .set_send_plan(id, "photos_photos_20261121T053756Z", None, Kind::Full)
            .expect("plan");
        store.set_send_progress(id, 1000, 400).expect("progress");
        let u = Uuid::new_v4();
        store
            .finish_send(id, Status::Succeeded, None, Some(u))
            .expect("finish");
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.status, r.kind, r.received_uuid),
            (Status::Succeeded, Some(Kind::Full), Some(u))
        );
        assert_eq!((r.stream_bytes, r.wire_bytes), (1000, 400));
        assert!(r.ended_at.is_some());
    }

    #[test]
    fn filters_limit_and_order_newest_first() {
        let store = in_memory();
        for task in ["a", "b", "a", "a"] {
            store.begin_send(&send(task)).expect("begin");
        }
        let a = store
            .send_history(&SendFilter {
                task: Some("a"),
                limit: Some(2),
            })
            .expect("list");
        assert_eq!(a.iter().map(|r| r.id).collect::<Vec<_>>(), vec![4, 3]);
        assert!(store.has_send_history("b").expect("q"));
        assert!(!store.has_send_history("c").expect("q"));
    }

    #[test]
    fn a_closed_row_is_never_closed_again() {
        // Pins: a daemon failing "orphaned" rows must not overwrite a run that
        // finished between its look and its write.
        let store = in_memory();
        let id = store.begin_send(&send("a")).expect("begin");
        assert!(store
            .finish_send(id, Status::Succeeded, None, Some(Uuid::new_v4()))
            .expect("finish"));
        assert!(!store
            .finish_send(id, Status::Failed, Some("orphan"), None)
            .expect("second finish"));
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!(
            (rows[0].status, rows[0].error.as_deref()),
            (Status::Succeeded, None)
        );
    }

    #[test]
    fn running_rows_receive_crash_recovery_and_confirmed_uuids() {
        let store = in_memory();
        let done = store.begin_send(&send("a")).expect("begin");
        let u = Uuid::new_v4();
        store
            .finish_send_counted(
                done,
                &Finish {
                    status: Status::Succeeded,
                    error: None,
                    received_uuid: Some(u),
                    bytes: Some((10, 5)),
                },
            )
            .expect("finish");
        let running = store.begin_send(&send("a")).expect("begin");
        store
            .skipped_send(&send("a"), "previous run still going")
            .expect("skip");
        assert_eq!(
            store.running_sends().expect("q"),
            vec![(running, "a".to_string())]
        );
        assert_eq!(store.confirmed_uuids("a").expect("q"), HashSet::from([u]));
        assert!(store.confirmed_uuids("b").expect("q").is_empty());
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!((rows[2].stream_bytes, rows[2].wire_bytes), (10, 5));
        store
            .begin_receive(&NewReceive {
                source: "nas1",
                source_uuid: None,
                share: "photos",
                pool: "backup",
                snapshot: "s",
                parent: None,
                kind: Kind::Full,
            })
            .expect("receive");
        assert_eq!(store.fail_running_receives("crashed").expect("fail"), 1);
        let rx = store
            .receive_history(&ReceiveFilter::default())
            .expect("list");
        assert_eq!(
            (rx[0].status, rx[0].error.as_deref()),
            (Status::Failed, Some("crashed"))
        );
    }

    #[test]
    fn a_failure_always_carries_a_reason() {
        let store = in_memory();
        let id = store.begin_send(&send("a")).expect("begin");
        store
            .finish_send(id, Status::Failed, None, None)
            .expect("finish");
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!(rows[0].error.as_deref(), Some("no reason recorded"));
    }

    #[test]
    fn history_json_keeps_its_keys_and_their_order() {
        // Pins `ferry history send|receive --json`: scripts read these keys.
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let u = Uuid::parse_str("9b2a1c3e-0000-4000-8000-000000000001").expect("uuid");
        let send = SendRow {
            id: 7,
            task: "photos".into(),
            target: "nas2".into(),
            share: "photos".into(),
            snapshot: Some("photos_photos_20261121T053756Z".into()),
            parent: None,
            kind: Some(Kind::Full),
            status: Status::Succeeded,
            error: None,
            started_at: at("2026-11-21T05:37:56Z"),
            ended_at: Some(at("2026-11-21T05:38:01.5Z")),
            stream_bytes: 1000,
            wire_bytes: 400,
            received_uuid: Some(u),
        };
        assert_eq!(
            serde_json::to_string(&send).expect("json"),
            r#"{"id":7,"task":"photos","target":"nas2","share":"photos","snapshot":"photos_photos_20261121T053756Z","parent":null,"kind":"full","status":"succeeded","error":null,"started_at":"2026-11-21T05:37:56Z","ended_at":"2026-11-21T05:38:01.500Z","stream_bytes":1000,"wire_bytes":400,"received_uuid":"9b2a1c3e-0000-4000-8000-000000000001"}"#
        );
        let receive = ReceiveRow {
            id: 3,
            source: "nas1".into(),
            source_uuid: Some(u),
            share: "photos".into(),
            pool: "backup".into(),
            snapshot: "s2".into(),
            parent: Some("s1".into()),
            kind: Some(Kind::Incremental),
            status: Status::Failed,
            error: Some("disk full".into()),
            started_at: at("2026-11-21T05:37:56Z"),
            ended_at: None,
            stream_bytes: 10,
            wire_bytes: 5,
            received_uuid: None,
        };
        assert_eq!(
            serde_json::to_string(&receive).expect("json"),
            r#"{"id":3,"source":"nas1","source_uuid":"9b2a1c3e-0000-4000-8000-000000000001","share":"photos","pool":"backup","snapshot":"s2","parent":"s1","kind":"incremental","status":"failed","error":"disk full","started_at":"2026-11-21T05:37:56Z","ended_at":null,"stream_bytes":10,"wire_bytes":5,"received_uuid":null}"#
        );
    }
}
