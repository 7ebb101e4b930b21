//! Send history rows: opened `running` before anything can fail, finished once,
//! with the byte counts and the reason a person needs.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};
use uuid::Uuid;

use super::attempt::{limit, Attempt, Finish, Kind, Status, Table, ATTEMPT_COLUMNS};
use super::db::{now, DbUuid, Result, Store, Ts};
use super::history::{NewSend, SendFilter, SendRow};

fn from_row(r: &Row<'_>) -> rusqlite::Result<SendRow> {
    Ok(SendRow {
        id: r.get(0)?,
        task: r.get(1)?,
        target: r.get(2)?,
        share: r.get(3)?,
        attempt: Attempt::from_row(r, 4)?,
        unchanged: r.get(16)?,
        warnings: warnings(r, 17)?,
    })
}

/// The `warnings` column: a JSON list of sentences, NULL for none.
fn warnings(r: &Row<'_>, i: usize) -> rusqlite::Result<Vec<String>> {
    match r.get::<_, Option<String>>(i)? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        }),
    }
}

/// A snapshot a task's row records as taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The send row that took it.
    pub row: i64,
    pub name: String,
    /// Its uuid; `None` for rows from before uuids were recorded (or a crash
    /// between taking the snapshot and recording it), adopted by name once.
    pub uuid: Option<Uuid>,
}

impl Store {
    /// Opens a `running` send row; every attempt gets one before anything can fail.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn begin_send(&self, s: &NewSend<'_>) -> Result<i64> {
        Ok(self.conn().query_row(
            "INSERT INTO send_history (task_id, task, target, share, status, started_at)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5) RETURNING id",
            (s.task_id, s.task, s.target, s.share, Ts(now())),
            |r| r.get(0),
        )?)
    }

    /// Records that send `id` continued a parked receive from `offset` bytes.
    pub fn set_send_resumed_from(&self, id: i64, offset: u64) -> Result<()> {
        self.conn().execute(
            "UPDATE send_history SET resumed_from = ?2 WHERE id = ?1",
            (id, offset),
        )?;
        Ok(())
    }

    /// Records a tick that did not run (say, the previous run was still going).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn skipped_send(&self, s: &NewSend<'_>, reason: &str) -> Result<i64> {
        let now = Ts(now());
        Ok(self.conn().query_row(
            "INSERT INTO send_history (task_id, task, target, share, status, error, started_at, ended_at)
             VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, ?6, ?6) RETURNING id",
            (s.task_id, s.task, s.target, s.share, reason, now),
            |r| r.get(0),
        )?)
    }

    /// Closes a running row as `skipped` because the share had not changed
    /// since `snapshot`, which the target holds (`no change since <snapshot>`).
    /// A row already closed is left as it is.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn unchanged_send(&self, id: i64, snapshot: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE send_history SET status = 'skipped', error = ?3, snapshot = ?2,
                unchanged = 1, ended_at = ?4
             WHERE id = ?1 AND status = 'running'",
            (
                id,
                snapshot,
                format!("no change since {snapshot}"),
                Ts(now()),
            ),
        )?;
        Ok(n > 0)
    }

    /// Records the send stream version a send uses (1 or 2).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn set_send_stream_version(&self, id: i64, version: u32) -> Result<()> {
        self.set_stream_version(Table::Send, id, version)
    }

    /// Adds a warning to a send row (kept in order, whatever the row's status).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn add_send_warning(&self, id: i64, warning: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE send_history SET warnings = json_insert(coalesce(warnings, '[]'), '$[#]', ?2)
             WHERE id = ?1",
            (id, warning),
        )?;
        Ok(())
    }

    /// Records the nested subvolumes a send found in its share (paths relative
    /// to the share).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn set_send_nested(&self, id: i64, nested: &[String]) -> Result<()> {
        let json = serde_json::to_string(nested).unwrap_or_else(|_| "[]".to_string());
        self.conn().execute(
            "UPDATE send_history SET nested = ?2 WHERE id = ?1",
            (id, json),
        )?;
        Ok(())
    }

    /// The nested subvolumes the share of task `task_id` held when it took the
    /// snapshot `uuid` (see [`Store::set_send_nested`]); empty when none were
    /// found, or nothing was recorded.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails or the
    /// column does not hold a list.
    pub fn snapshot_nested(&self, task_id: i64, uuid: Uuid) -> Result<Vec<String>> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT nested FROM send_history
                 WHERE task_id = ?1 AND unchanged = 0 AND nested IS NOT NULL
                   AND (snapshot_uuid = ?2 OR (status = 'succeeded' AND received_uuid = ?2))
                 ORDER BY id DESC LIMIT 1",
                (task_id, DbUuid(uuid)),
                |r| r.get(0),
            )
            .optional()?;
        Ok(match text {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
        })
    }

    /// Records the name of the snapshot a send is about to take, before it is
    /// taken: a crash right after leaves a row that names it, by which the
    /// next run adopts it (see [`SnapshotRecord`]).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn set_send_snapshot(&self, id: i64, snapshot: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE send_history SET snapshot = ?2 WHERE id = ?1",
            (id, snapshot),
        )?;
        Ok(())
    }

    /// Records the uuid of the snapshot a send took (or adopted): from now on
    /// that uuid is the task's, whatever its name.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn set_send_snapshot_uuid(&self, id: i64, uuid: Uuid) -> Result<()> {
        self.conn().execute(
            "UPDATE send_history SET snapshot_uuid = ?2 WHERE id = ?1",
            (id, DbUuid(uuid)),
        )?;
        Ok(())
    }

    /// Every snapshot the rows of task `task_id` record as taken, oldest row
    /// first: the task's own snapshots and nothing else.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn snapshot_records(&self, task_id: i64) -> Result<Vec<SnapshotRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, snapshot, snapshot_uuid,
                    CASE WHEN status = 'succeeded' THEN received_uuid END
             FROM send_history
             WHERE task_id = ?1 AND snapshot IS NOT NULL AND unchanged = 0 ORDER BY id",
        )?;
        let rows = stmt.query_map([task_id], |r| {
            let taken: Option<DbUuid> = r.get(2)?;
            // A confirmed row's received_uuid is its snapshot's uuid.
            let confirmed: Option<DbUuid> = r.get(3)?;
            Ok(SnapshotRecord {
                row: r.get(0)?,
                name: r.get(1)?,
                uuid: taken.or(confirmed).map(|u| u.0),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Snapshot uuids that rows of tasks other than `task_id` (deleted ones
    /// included) record: never adopted by `task_id`.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn snapshots_of_others(&self, task_id: i64) -> Result<HashSet<Uuid>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT coalesce(snapshot_uuid, CASE WHEN status = 'succeeded' THEN received_uuid END)
             FROM send_history
             WHERE task_id IS NOT ?1 AND snapshot IS NOT NULL AND unchanged = 0",
        )?;
        let rows = stmt.query_map([task_id], |r| r.get::<_, Option<DbUuid>>(0))?;
        let mut out = HashSet::new();
        for u in rows {
            out.extend(u?.map(|u| u.0));
        }
        Ok(out)
    }

    /// Records what a send will carry, once the plan is known.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
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

    /// Records the bytes a running send has moved so far (`stream_bytes` of the
    /// btrfs send stream, uncompressed; `wire_bytes` on the data connection); a
    /// closed row keeps its final counts.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn set_send_progress(&self, id: i64, stream_bytes: u64, wire_bytes: u64) -> Result<()> {
        self.set_progress(Table::Send, id, stream_bytes, wire_bytes)
    }

    /// Closes a running send row; a row already closed is left as it is.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn finish_send(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        received_uuid: Option<Uuid>,
    ) -> Result<bool> {
        self.finish(
            Table::Send,
            id,
            &Finish {
                status,
                error,
                received_uuid,
                bytes: None,
            },
        )
    }

    /// Closes a running send row with its final byte counts, in one statement.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn finish_send_counted(&self, id: i64, f: &Finish<'_>) -> Result<bool> {
        self.finish(Table::Send, id, f)
    }

    /// Running send rows as (id, task): a row whose task lock is free belongs to
    /// a process that died.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn running_sends(&self) -> Result<Vec<(i64, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, task FROM send_history WHERE status = 'running' ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// When the task's newest send attempt started (schedules count from it).
    /// A run that found the share unchanged is an attempt; a tick skipped
    /// because a run was in progress is not.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn last_send_started(&self, task: &str) -> Result<Option<DateTime<Utc>>> {
        let t: Option<Ts> = self
            .conn()
            .query_row(
                "SELECT started_at FROM send_history
                 WHERE task = ?1 AND (status != 'skipped' OR unchanged = 1)
                 ORDER BY id DESC LIMIT 1",
                [task],
                |r| r.get(0),
            )
            .optional()?;
        Ok(t.map(|t| t.0))
    }

    /// The uuids of every snapshot of this task a target ever confirmed. A
    /// snapshot in this set is never deleted as "unconfirmed", whatever one
    /// inventory says: only retention may remove it.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn confirmed_uuids(&self, task: &str) -> Result<HashSet<Uuid>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT received_uuid FROM send_history
             WHERE task = ?1 AND status = 'succeeded' AND received_uuid IS NOT NULL",
        )?;
        let rows = stmt.query_map([task], |r| r.get::<_, DbUuid>(0))?;
        Ok(rows
            .map(|u| u.map(|u| u.0))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Send rows, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn send_history(&self, f: &SendFilter<'_>) -> Result<Vec<SendRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT id, task, target, share, {ATTEMPT_COLUMNS}, unchanged, warnings FROM send_history
             WHERE ?1 IS NULL OR task = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map((f.task, limit(f.limit)), from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether any send row names this task (a deleted task's history is still asked for).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn has_send_history(&self, task: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM send_history WHERE task = ?1)",
            [task],
            |r| r.get(0),
        )?)
    }
}
