//! What disaster recovery records: writable copies of replicas made by
//! `ferry replica restore`, and the failback bases a receive made.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};
use uuid::Uuid;

use super::db::{now, DbUuid, Result, Store, Ts};
use super::replicas::Replica;

/// A writable copy of a replica, made by `ferry replica restore`; in JSON
/// with these field names, in this order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restore {
    pub id: i64,
    pub pool: String,
    pub source: String,
    pub source_uuid: Uuid,
    pub share: String,
    /// The replica it is a copy of.
    pub snapshot: String,
    pub received_uuid: Uuid,
    /// Where the copy is (absolute).
    pub path: PathBuf,
    /// The copy's own subvolume uuid.
    pub uuid: Uuid,
    pub restored_at: DateTime<Utc>,
}

/// One of this appliance's own snapshots, as its send rows record it: the
/// task that took it and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnSnapshot {
    pub task_id: i64,
    pub task: String,
    pub name: String,
    /// `<task's snapshot dir>/<name>`.
    pub path: PathBuf,
}

/// A read-only snapshot of one of this appliance's own snapshots that a
/// receive made in a replica directory as a failback's parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailbackBase {
    pub id: i64,
    pub pool: String,
    pub source_uuid: Uuid,
    pub share: String,
    /// Its name in the replica directory.
    pub name: String,
    /// Its own uuid: the subvolume of that name is deleted only while it
    /// still has it.
    pub uuid: Uuid,
    /// The snapshot it is a copy of, and that snapshot's uuid (its received_uuid).
    pub origin: String,
    pub origin_uuid: Uuid,
}

const RESTORE_COLUMNS: &str = "id, pool, source, source_uuid, share, snapshot, received_uuid,
    path, uuid, restored_at";

fn restore_from(r: &Row<'_>) -> rusqlite::Result<Restore> {
    Ok(Restore {
        id: r.get(0)?,
        pool: r.get(1)?,
        source: r.get(2)?,
        source_uuid: r.get::<_, DbUuid>(3)?.0,
        share: r.get(4)?,
        snapshot: r.get(5)?,
        received_uuid: r.get::<_, DbUuid>(6)?.0,
        path: PathBuf::from(r.get::<_, String>(7)?),
        uuid: r.get::<_, DbUuid>(8)?.0,
        restored_at: r.get::<_, Ts>(9)?.0,
    })
}

const BASE_COLUMNS: &str = "id, pool, source_uuid, share, name, uuid, origin, origin_uuid";

fn base_from(r: &Row<'_>) -> rusqlite::Result<FailbackBase> {
    Ok(FailbackBase {
        id: r.get(0)?,
        pool: r.get(1)?,
        source_uuid: r.get::<_, DbUuid>(2)?.0,
        share: r.get(3)?,
        name: r.get(4)?,
        uuid: r.get::<_, DbUuid>(5)?.0,
        origin: r.get(6)?,
        origin_uuid: r.get::<_, DbUuid>(7)?.0,
    })
}

impl Store {
    /// Records that `replica` was restored as the writable subvolume `uuid`
    /// at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn record_restore(&self, replica: &Replica, path: &Path, uuid: Uuid) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO restores (pool, source, source_uuid, share, snapshot, received_uuid,
                path, uuid, restored_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                replica.pool,
                replica.source,
                DbUuid(replica.source_uuid),
                replica.share,
                replica.snapshot,
                DbUuid(replica.received_uuid),
                path.to_string_lossy(),
                DbUuid(uuid),
                Ts(now()),
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Every restore, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn restores(&self) -> Result<Vec<Restore>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RESTORE_COLUMNS} FROM restores ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map([], restore_from)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The snapshot of uuid `uuid` if one of this appliance's tasks (one that
    /// still exists) took it, by its send rows: its own, by record.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn own_snapshot(&self, uuid: Uuid) -> Result<Option<OwnSnapshot>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT s.task_id, t.name, s.snapshot, t.snapshot_dir
                 FROM send_history s JOIN tasks t ON t.id = s.task_id
                 WHERE s.snapshot IS NOT NULL AND s.unchanged = 0
                   AND (s.snapshot_uuid = ?1 OR (s.status = 'succeeded' AND s.received_uuid = ?1))
                 ORDER BY s.id DESC LIMIT 1",
                [DbUuid(uuid)],
                |r| {
                    let name: String = r.get(2)?;
                    let dir = PathBuf::from(r.get::<_, String>(3)?);
                    Ok(OwnSnapshot {
                        task_id: r.get(0)?,
                        task: r.get(1)?,
                        path: dir.join(&name),
                        name,
                    })
                },
            )
            .optional()?)
    }

    /// Records a failback base a receive made.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails, or one of
    /// that name is recorded in the line already.
    pub fn record_failback_base(&self, b: &FailbackBase) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO failback_bases (pool, source_uuid, share, name, uuid, origin,
                origin_uuid, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                b.pool,
                DbUuid(b.source_uuid),
                b.share,
                b.name,
                DbUuid(b.uuid),
                b.origin,
                DbUuid(b.origin_uuid),
                Ts(now()),
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The failback bases recorded in one line.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn failback_bases(
        &self,
        pool: &str,
        source_uuid: Uuid,
        share: &str,
    ) -> Result<Vec<FailbackBase>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {BASE_COLUMNS} FROM failback_bases
             WHERE pool = ?1 AND source_uuid = ?2 AND share = ?3 ORDER BY id"
        ))?;
        let rows = stmt.query_map((pool, DbUuid(source_uuid), share), base_from)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets a failback base (deleted, or found gone).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn remove_failback_base(&self, id: i64) -> Result<()> {
        self.conn()
            .execute("DELETE FROM failback_bases WHERE id = ?1", [id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::in_memory;
    use super::*;

    #[test]
    fn restores_and_bases_are_recorded_and_read_back() {
        let store = in_memory();
        let replica = Replica {
            id: 1,
            pool: "backup".into(),
            source: "nas1".into(),
            source_uuid: Uuid::new_v4(),
            share: "photos".into(),
            snapshot: "s1".into(),
            received_uuid: Uuid::new_v4(),
            stream_bytes: 0,
            received_at: now(),
            created_at: None,
            ctransid: None,
        };
        let copy = Uuid::new_v4();
        store
            .record_restore(&replica, Path::new("/mnt/live"), copy)
            .expect("restore");
        let rows = store.restores().expect("restores");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].path.as_path(), rows[0].uuid, rows[0].received_uuid),
            (Path::new("/mnt/live"), copy, replica.received_uuid)
        );
        let base = FailbackBase {
            id: 0,
            pool: "home".into(),
            source_uuid: Uuid::new_v4(),
            share: "photos".into(),
            name: ".failback-s1".into(),
            uuid: Uuid::new_v4(),
            origin: "s1".into(),
            origin_uuid: Uuid::new_v4(),
        };
        let id = store.record_failback_base(&base).expect("base");
        assert!(store.record_failback_base(&base).is_err(), "one per name");
        let held = store
            .failback_bases("home", base.source_uuid, "photos")
            .expect("bases");
        assert_eq!(held, [FailbackBase { id, ..base.clone() }]);
        store.remove_failback_base(id).expect("rm");
        assert!(store
            .failback_bases("home", base.source_uuid, "photos")
            .expect("bases")
            .is_empty());
        assert!(store.own_snapshot(Uuid::new_v4()).expect("q").is_none());
    }
}
