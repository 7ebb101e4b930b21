//! What every history row records, sent or received: the attempt's snapshot,
//! status, times and byte counts, and how a `running` row is updated and closed.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::Row;
use serde::Serialize;
use uuid::Uuid;

use super::db::{now, DbUuid, Result, Store, Ts};

/// A text column held a word its enum does not know (a newer ferry wrote it, or
/// someone edited the database).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {text:?}")]
pub struct UnknownText {
    /// The enum, e.g. `Status`.
    pub what: &'static str,
    pub text: String,
}

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
            type Err = UnknownText;
            fn from_str(s: &str) -> Result<Self, UnknownText> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownText { what: stringify!($name), text: other.to_string() }),
                }
            }
        }
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e: UnknownText| FromSqlError::Other(Box::new(e)))
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
text_enum!(
    /// Where a send's expected stream size came from (see `store::Expected`).
    Basis { LastStream = "last_stream", Referenced = "referenced" }
);

/// One attempt's own columns, shared by send and receive rows; in JSON its fields
/// follow the row's own (`#[serde(flatten)]`), in this order.
///
/// `S` is the snapshot's name: `Option<String>` for a send (a run can fail
/// before it picks one), `String` for a receive (Begin names it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt<S> {
    pub snapshot: S,
    /// The parent snapshot's name of an incremental stream.
    pub parent: Option<String>,
    /// None until the plan is known.
    pub kind: Option<Kind>,
    pub status: Status,
    /// Why it failed or was skipped; always set for those.
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    /// None while `running`.
    pub ended_at: Option<DateTime<Utc>>,
    /// Bytes of the btrfs send stream moved, uncompressed.
    pub stream_bytes: u64,
    /// Bytes on the data connection, compressed, chunk headers included.
    pub wire_bytes: u64,
    /// The uuid the receiver confirmed: on success only.
    pub received_uuid: Option<Uuid>,
    /// Where this attempt's stream started, in bytes of the send stream: 0 for
    /// a fresh one, the offset of the parked receive it resumed otherwise.
    pub resumed_from: u64,
    /// The send stream version the attempt used (1 or 2); `None` when it
    /// ended before streaming, or predates the record.
    pub stream_version: Option<u32>,
}

/// The columns [`Attempt::from_row`] reads, in its order.
pub(super) const ATTEMPT_COLUMNS: &str = "snapshot, parent, kind, status, error, \
    started_at, ended_at, stream_bytes, wire_bytes, received_uuid, resumed_from, stream_version";

impl<S: FromSql> Attempt<S> {
    /// Reads [`ATTEMPT_COLUMNS`] from `row`, starting at column `first`.
    pub(super) fn from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Self> {
        let at = |i: usize| first + i;
        Ok(Attempt {
            snapshot: row.get(at(0))?,
            parent: row.get(at(1))?,
            kind: row.get(at(2))?,
            status: row.get(at(3))?,
            error: row.get(at(4))?,
            started_at: row.get::<_, Ts>(at(5))?.0,
            ended_at: row.get::<_, Option<Ts>>(at(6))?.map(|t| t.0),
            stream_bytes: row.get(at(7))?,
            wire_bytes: row.get(at(8))?,
            received_uuid: row.get::<_, Option<DbUuid>>(at(9))?.map(|u| u.0),
            resumed_from: row.get(at(10))?,
            stream_version: row.get(at(11))?,
        })
    }
}

/// How a row is closed.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    pub status: Status,
    /// Required for failures and skips: no silent outcome.
    pub error: Option<&'a str>,
    pub received_uuid: Option<Uuid>,
    /// Final counts in bytes, when the caller has them: (the btrfs send stream,
    /// uncompressed; the data connection, compressed with chunk headers).
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
    /// Records the send stream version an attempt uses.
    pub(super) fn set_stream_version(&self, t: Table, id: i64, version: u32) -> Result<()> {
        self.conn().execute(
            &format!("UPDATE {} SET stream_version = ?2 WHERE id = ?1", t.name()),
            (id, version),
        )?;
        Ok(())
    }

    /// Records the byte counts of a row that is still `running`. A closed row
    /// keeps its final counts: a late progress write (they run off the data
    /// path, on their own clock) must not undo them.
    pub(super) fn set_progress(&self, t: Table, id: i64, stream: u64, wire: u64) -> Result<()> {
        self.conn().execute(
            &format!(
                "UPDATE {} SET stream_bytes = ?2, wire_bytes = ?3 WHERE id = ?1 AND status = 'running'",
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
            (Status::Failed | Status::Skipped, None) => Some("no reason recorded".to_string()),
            // A row's reason is one line, whatever a library or a peer sent.
            (_, e) => e.map(|e| e.split_whitespace().collect::<Vec<_>>().join(" ")),
        };
        let (stream, wire) = f.bytes.map_or((None, None), |(s, w)| (Some(s), Some(w)));
        let n = self.conn().execute(
            &format!(
                "UPDATE {} SET status = ?2, error = ?3, received_uuid = ?4, ended_at = ?5,
                     stream_bytes = coalesce(?6, stream_bytes), wire_bytes = coalesce(?7, wire_bytes)
                     {}
                 WHERE id = ?1 AND status = 'running'",
                t.name(),
                // A parked receive that ends is no longer waiting.
                match t {
                    Table::Receive => ", parked_until = NULL",
                    Table::Send => "",
                }
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
