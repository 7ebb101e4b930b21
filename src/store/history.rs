//! Send and receive history: one row per attempt, opened as `running` and finished
//! as `succeeded`, `failed` or `skipped` with the reason a person needs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row};
use serde::Serialize;
use uuid::Uuid;

use super::{DbUuid, Result, Store, Ts};

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

/// The two history tables share their lifecycle columns; these name them.
#[derive(Clone, Copy)]
enum Table {
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

const SEND_COLUMNS: &str = "id, task, target, share, snapshot, parent, kind, status, error,
    started_at, ended_at, stream_bytes, wire_bytes, received_uuid";
const RECEIVE_COLUMNS: &str = "id, source, source_uuid, share, pool, snapshot, parent, kind,
    status, error, started_at, ended_at, stream_bytes, wire_bytes, received_uuid";

fn send_row(r: &Row<'_>) -> rusqlite::Result<SendRow> {
    Ok(SendRow {
        id: r.get(0)?,
        task: r.get(1)?,
        target: r.get(2)?,
        share: r.get(3)?,
        snapshot: r.get(4)?,
        parent: r.get(5)?,
        kind: r.get(6)?,
        status: r.get(7)?,
        error: r.get(8)?,
        started_at: r.get::<_, Ts>(9)?.0,
        ended_at: r.get::<_, Option<Ts>>(10)?.map(|t| t.0),
        stream_bytes: r.get(11)?,
        wire_bytes: r.get(12)?,
        received_uuid: r.get::<_, Option<DbUuid>>(13)?.map(|u| u.0),
    })
}

fn receive_row(r: &Row<'_>) -> rusqlite::Result<ReceiveRow> {
    Ok(ReceiveRow {
        id: r.get(0)?,
        source: r.get(1)?,
        source_uuid: r.get::<_, Option<DbUuid>>(2)?.map(|u| u.0),
        share: r.get(3)?,
        pool: r.get(4)?,
        snapshot: r.get(5)?,
        parent: r.get(6)?,
        kind: r.get(7)?,
        status: r.get(8)?,
        error: r.get(9)?,
        started_at: r.get::<_, Ts>(10)?.0,
        ended_at: r.get::<_, Option<Ts>>(11)?.map(|t| t.0),
        stream_bytes: r.get(12)?,
        wire_bytes: r.get(13)?,
        received_uuid: r.get::<_, Option<DbUuid>>(14)?.map(|u| u.0),
    })
}

impl Store {
    /// Opens a `running` send row; every attempt gets one before anything can fail.
    pub fn begin_send(&self, s: &NewSend<'_>) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO send_history (task_id, task, target, share, status, started_at)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
            (s.task_id, s.task, s.target, s.share, Ts(super::now())),
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Records a tick that did not run (say, the previous run was still going).
    pub fn skipped_send(&self, s: &NewSend<'_>, reason: &str) -> Result<i64> {
        let now = Ts(super::now());
        self.conn().execute(
            "INSERT INTO send_history (task_id, task, target, share, status, error, started_at, ended_at)
             VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, ?6, ?6)",
            (s.task_id, s.task, s.target, s.share, reason, now),
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Records what a send will carry, once the plan is known.
    pub fn set_send_plan(
        &self,
        id: i64,
        snapshot: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE send_history SET snapshot = ?2, parent = ?3, kind = ?4 WHERE id = ?1",
            (id, snapshot, parent, kind),
        )?;
        Ok(())
    }

    pub fn begin_receive(&self, r: &NewReceive<'_>) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO receive_history (source, source_uuid, share, pool, snapshot, parent, kind,
                status, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8)",
            rusqlite::params![
                r.source,
                r.source_uuid.map(DbUuid),
                r.share,
                r.pool,
                r.snapshot,
                r.parent,
                r.kind,
                Ts(super::now()),
            ],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    pub fn set_send_progress(&self, id: i64, stream_bytes: u64, wire_bytes: u64) -> Result<()> {
        self.set_progress(Table::Send, id, stream_bytes, wire_bytes)
    }

    pub fn set_receive_progress(&self, id: i64, stream_bytes: u64, wire_bytes: u64) -> Result<()> {
        self.set_progress(Table::Receive, id, stream_bytes, wire_bytes)
    }

    /// Closes a send row. `error` is required for failures: no silent outcome.
    pub fn finish_send(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        received_uuid: Option<Uuid>,
    ) -> Result<()> {
        self.finish(Table::Send, id, status, error, received_uuid)
    }

    pub fn finish_receive(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        received_uuid: Option<Uuid>,
    ) -> Result<()> {
        self.finish(Table::Receive, id, status, error, received_uuid)
    }

    /// Marks rows a crashed process left `running` as failed; returns how many.
    pub fn fail_running_sends(&self, reason: &str) -> Result<usize> {
        self.fail_running(Table::Send, reason)
    }

    pub fn fail_running_receives(&self, reason: &str) -> Result<usize> {
        self.fail_running(Table::Receive, reason)
    }

    /// Running send rows as (id, task): the daemon fails those whose task lock is
    /// free at start (their process died), and leaves a live CLI run's row alone.
    pub fn running_sends(&self) -> Result<Vec<(i64, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, task FROM send_history WHERE status = 'running' ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// When the task's newest send attempt started (schedules count from it).
    pub fn last_send_started(&self, task: &str) -> Result<Option<DateTime<Utc>>> {
        let t: Option<Ts> = self
            .conn()
            .query_row(
                "SELECT started_at FROM send_history WHERE task = ?1 AND status != 'skipped'
                 ORDER BY id DESC LIMIT 1",
                [task],
                |r| r.get(0),
            )
            .optional()?;
        Ok(t.map(|t| t.0))
    }

    /// Send rows, newest first.
    pub fn send_history(&self, f: &SendFilter<'_>) -> Result<Vec<SendRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SEND_COLUMNS} FROM send_history
             WHERE ?1 IS NULL OR task = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map((f.task, limit(f.limit)), send_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Receive rows, newest first.
    pub fn receive_history(&self, f: &ReceiveFilter<'_>) -> Result<Vec<ReceiveRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RECEIVE_COLUMNS} FROM receive_history
             WHERE ?1 IS NULL OR source = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map((f.source, limit(f.limit)), receive_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether any send row names this task (a deleted task's history is still asked for).
    pub fn has_send_history(&self, task: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM send_history WHERE task = ?1)",
            [task],
            |r| r.get(0),
        )?)
    }

    pub fn has_receive_history(&self, source: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM receive_history WHERE source = ?1)",
            [source],
            |r| r.get(0),
        )?)
    }

    fn set_progress(&self, t: Table, id: i64, stream: u64, wire: u64) -> Result<()> {
        self.conn().execute(
            &format!(
                "UPDATE {} SET stream_bytes = ?2, wire_bytes = ?3 WHERE id = ?1",
                t.name()
            ),
            (id, stream, wire),
        )?;
        Ok(())
    }

    fn finish(
        &self,
        t: Table,
        id: i64,
        status: Status,
        error: Option<&str>,
        received_uuid: Option<Uuid>,
    ) -> Result<()> {
        let error = match (status, error) {
            (Status::Failed | Status::Skipped, None) => Some("no reason recorded"),
            (_, e) => e,
        };
        self.conn().execute(
            &format!(
                "UPDATE {} SET status = ?2, error = ?3, received_uuid = ?4, ended_at = ?5
                 WHERE id = ?1",
                t.name()
            ),
            (
                id,
                status,
                error,
                received_uuid.map(DbUuid),
                Ts(super::now()),
            ),
        )?;
        Ok(())
    }

    fn fail_running(&self, t: Table, reason: &str) -> Result<usize> {
        Ok(self.conn().execute(
            &format!(
                "UPDATE {} SET status = 'failed', error = ?1, ended_at = ?2
                 WHERE status = 'running'",
                t.name()
            ),
            (reason, Ts(super::now())),
        )?)
    }
}

/// SQLite's "no limit" is -1.
fn limit(limit: Option<u32>) -> i64 {
    limit.map_or(-1, i64::from)
}

#[cfg(test)]
mod tests {
    use super::super::in_memory;
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
    fn rows_left_running_by_a_crash_are_failed_at_start() {
        let store = in_memory();
        let done = store.begin_send(&send("a")).expect("begin");
        store
            .finish_send(done, Status::Succeeded, None, None)
            .expect("finish");
        store.begin_send(&send("a")).expect("begin");
        store
            .skipped_send(&send("a"), "previous run still going")
            .expect("skip");
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
        assert_eq!(store.fail_running_sends("crashed").expect("fail"), 1);
        assert_eq!(store.fail_running_receives("crashed").expect("fail"), 1);
        let rows = store.send_history(&SendFilter::default()).expect("list");
        let statuses: Vec<_> = rows.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [Status::Skipped, Status::Failed, Status::Succeeded]
        );
        assert_eq!(rows[1].error.as_deref(), Some("crashed"));
        let rx = store
            .receive_history(&ReceiveFilter::default())
            .expect("list");
        assert_eq!(rx[0].status, Status::Failed);
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
}
