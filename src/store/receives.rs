//! Receive history rows: one per attempt on this appliance, opened `running` and
//! finished once (a verified receive is closed with its replica, in `replicas`).

use rusqlite::Row;
use uuid::Uuid;

use super::attempt::{limit, Attempt, Finish, Status, Table, ATTEMPT_COLUMNS};
use super::db::{now, DbUuid, Result, Store, Ts};
use super::history::{NewReceive, ReceiveFilter, ReceiveRow};

fn from_row(r: &Row<'_>) -> rusqlite::Result<ReceiveRow> {
    Ok(ReceiveRow {
        id: r.get(0)?,
        source: r.get(1)?,
        source_uuid: r.get::<_, Option<DbUuid>>(2)?.map(|u| u.0),
        share: r.get(3)?,
        pool: r.get(4)?,
        attempt: Attempt::from_row(r, 5)?,
        parked_until: r.get::<_, Option<Ts>>(17)?.map(|t| t.0),
    })
}

impl Store {
    /// Opens a `running` receive row; returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn begin_receive(&self, r: &NewReceive<'_>) -> Result<i64> {
        Ok(self.conn().query_row(
            "INSERT INTO receive_history (source, source_uuid, share, pool, snapshot, parent, kind,
                status, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8) RETURNING id",
            rusqlite::params![
                r.source,
                r.source_uuid.map(DbUuid),
                r.share,
                r.pool,
                r.snapshot,
                r.parent,
                r.kind,
                Ts(now()),
            ],
            |row| row.get(0),
        )?)
    }

    /// The snapshot names this receiver ever began to receive into one line
    /// (pool, source, share): a subvolume there under another name is not
    /// one of its receives, whatever state it is in.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn received_names(
        &self,
        pool: &str,
        source_uuid: Uuid,
        share: &str,
    ) -> Result<std::collections::HashSet<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT DISTINCT snapshot FROM receive_history
             WHERE pool = ?1 AND source_uuid = ?2 AND share = ?3",
        )?;
        let rows = stmt.query_map((pool, DbUuid(source_uuid), share), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records the send stream version a receive got (from the stream's header).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn set_receive_stream_version(&self, id: i64, version: u32) -> Result<()> {
        self.set_stream_version(Table::Receive, id, version)
    }

    /// Records the bytes a running receive has taken so far (`stream_bytes`
    /// uncompressed, `wire_bytes` as they came over the data connection); a closed
    /// row keeps its final counts.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn set_receive_progress(&self, id: i64, stream_bytes: u64, wire_bytes: u64) -> Result<()> {
        self.set_progress(Table::Receive, id, stream_bytes, wire_bytes)
    }

    /// Closes a running receive row; a row already closed is left as it is.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn finish_receive(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        received_uuid: Option<Uuid>,
    ) -> Result<bool> {
        self.finish(
            Table::Receive,
            id,
            &Finish {
                status,
                error,
                received_uuid,
                bytes: None,
            },
        )
    }

    /// Records that receive `id` continues a parked one from `offset` bytes.
    pub fn set_receive_resumed_from(&self, id: i64, offset: u64) -> Result<()> {
        self.conn().execute(
            "UPDATE receive_history SET resumed_from = ?2 WHERE id = ?1",
            (id, offset),
        )?;
        Ok(())
    }

    /// Marks running receive `id` parked: its connection broke after `offset`
    /// bytes of the stream, and it waits for a resume until `until`. The row
    /// stays `running`; finishing it clears `parked_until`.
    pub fn park_receive(
        &self,
        id: i64,
        offset: u64,
        until: Option<chrono::DateTime<chrono::Utc>>,
        reason: &str,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE receive_history SET stream_bytes = ?2, parked_until = ?3, error = ?4
             WHERE id = ?1 AND status = 'running'",
            (id, offset, until.map(Ts), reason),
        )?;
        Ok(())
    }

    /// Marks rows a crashed receiver left `running` as failed; returns how many.
    /// Only the receiver calls this, at start, when no receive of its can be alive.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn fail_running_receives(&self, reason: &str) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE receive_history SET status = 'failed', error = ?1, ended_at = ?2
             WHERE status = 'running'",
            (reason, Ts(now())),
        )?)
    }

    /// Receive rows into `pool` that are `running`: receives in flight while the
    /// receiver is alive, rows a crash left behind otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn running_receives(&self, pool: &str) -> Result<Vec<ReceiveRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT id, source, source_uuid, share, pool, {ATTEMPT_COLUMNS}, parked_until
             FROM receive_history WHERE status = 'running' AND pool = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([pool], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether receive row `id` is still `running`.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn receive_running(&self, id: i64) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM receive_history WHERE id = ?1 AND status = 'running')",
            [id],
            |r| r.get(0),
        )?)
    }

    /// Receive rows, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn receive_history(&self, f: &ReceiveFilter<'_>) -> Result<Vec<ReceiveRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT id, source, source_uuid, share, pool, {ATTEMPT_COLUMNS}, parked_until FROM receive_history
             WHERE ?1 IS NULL OR source = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map((f.source, limit(f.limit)), from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether any receive row names this source appliance (a removed one's
    /// history is still asked for).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn has_receive_history(&self, source: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM receive_history WHERE source = ?1)",
            [source],
            |r| r.get(0),
        )?)
    }
}
