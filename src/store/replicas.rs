//! Verified replicas this appliance holds as a receiver: the only source of what
//! Inventory reports and what `latest` points at.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};
use uuid::Uuid;

use super::attempt::Status;
use super::db::{now, DbUuid, Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: i64,
    pub pool: String,
    pub source: String,
    pub source_uuid: Uuid,
    pub share: String,
    pub snapshot: String,
    pub received_uuid: Uuid,
    /// Bytes of the btrfs send stream it was received from, uncompressed.
    pub stream_bytes: u64,
    pub received_at: DateTime<Utc>,
    /// When its source snapshot was made, as the sender said (btrfs otime);
    /// `None` from senders that do not say.
    pub created_at: Option<DateTime<Utc>>,
    /// Its ctransid once the receive was on disk; `None` until recorded.
    pub ctransid: Option<u64>,
}

impl Replica {
    /// Where the replica sits in a retention grid: its source snapshot's
    /// creation time, else when it arrived.
    pub fn grid_time(&self) -> DateTime<Utc> {
        self.created_at.unwrap_or(self.received_at)
    }
}

#[derive(Debug, Clone)]
pub struct NewReplica<'a> {
    pub pool: &'a str,
    /// Where the pool's replicas are: the replica is recorded only while a
    /// pool of that name is registered at that path (`ferry pool remove` may
    /// have run during the receive).
    pub pool_path: &'a Path,
    pub source: &'a str,
    pub source_uuid: Uuid,
    pub share: &'a str,
    pub snapshot: &'a str,
    pub received_uuid: Uuid,
    /// Bytes of the verified btrfs send stream, uncompressed.
    pub stream_bytes: u64,
    pub created_at: Option<DateTime<Utc>>,
    /// Its ctransid once the receive was on disk.
    pub ctransid: Option<u64>,
}

const COLUMNS: &str = "id, pool, source, source_uuid, share, snapshot, received_uuid,
    stream_bytes, received_at, created_at, ctransid";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Replica> {
    Ok(Replica {
        id: r.get(0)?,
        pool: r.get(1)?,
        source: r.get(2)?,
        source_uuid: r.get::<_, DbUuid>(3)?.0,
        share: r.get(4)?,
        snapshot: r.get(5)?,
        received_uuid: r.get::<_, DbUuid>(6)?.0,
        stream_bytes: r.get(7)?,
        received_at: r.get::<_, Ts>(8)?.0,
        created_at: r.get::<_, Option<Ts>>(9)?.map(|t| t.0),
        ctransid: r.get(10)?,
    })
}

impl Store {
    /// Records a verified replica and closes its receive row as succeeded, in one
    /// transaction: a crash can never leave one without the other.
    ///
    /// # Errors
    ///
    /// [`Error::PoolGone`](crate::store::Error::PoolGone) when no pool `r.pool` is
    /// registered at `r.pool_path` any more (a `pool remove` during the receive);
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// The same snapshot already recorded in that pool fails the UNIQUE constraint, and
    /// nothing is written.
    pub fn commit_replica(&mut self, receive_id: i64, r: &NewReplica<'_>) -> Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let registered: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM pools WHERE name = ?1 AND path = ?2)",
            (r.pool, r.pool_path.to_string_lossy()),
            |row| row.get(0),
        )?;
        if !registered {
            return Err(super::Error::PoolGone(r.pool.to_string()));
        }
        tx.execute(
            "INSERT INTO replicas (pool, source, source_uuid, share, snapshot, received_uuid,
                stream_bytes, received_at, created_at, ctransid)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            rusqlite::params![
                r.pool,
                r.source,
                DbUuid(r.source_uuid),
                r.share,
                r.snapshot,
                DbUuid(r.received_uuid),
                r.stream_bytes,
                Ts(now()),
                r.created_at.map(Ts),
                r.ctransid,
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE receive_history SET status = ?2, error = NULL, received_uuid = ?3,
                stream_bytes = ?4, ended_at = ?5
             WHERE id = ?1",
            rusqlite::params![
                receive_id,
                Status::Succeeded,
                DbUuid(r.received_uuid),
                r.stream_bytes,
                Ts(now()),
            ],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Replicas of one share from one source in one pool, newest first: by id,
    /// the order they were committed in, never by a wall clock that can jump.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn replicas(&self, pool: &str, source_uuid: Uuid, share: &str) -> Result<Vec<Replica>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM replicas
             WHERE pool = ?1 AND source_uuid = ?2 AND share = ?3
             ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map((pool, DbUuid(source_uuid), share), from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest replica of every (pool, source, share), with how many are
    /// kept of each: what `ferry status` shows on a receiver.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn newest_replicas(&self) -> Result<Vec<(Replica, u32)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS},
                (SELECT count(*) FROM replicas o
                 WHERE o.pool = r.pool AND o.source_uuid = r.source_uuid AND o.share = r.share)
             FROM replicas r
             WHERE r.id = (SELECT n.id FROM replicas n
                 WHERE n.pool = r.pool AND n.source_uuid = r.source_uuid AND n.share = r.share
                 ORDER BY n.id DESC LIMIT 1)
             ORDER BY r.source, r.share, r.pool"
        ))?;
        let rows = stmt.query_map([], |row| Ok((from_row(row)?, row.get(11)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every replica in one pool (startup recovery walks them).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn pool_replicas(&self, pool: &str) -> Result<Vec<Replica>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM replicas WHERE pool = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([pool], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The replica of that snapshot, if this appliance holds it.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn replica(
        &self,
        pool: &str,
        source_uuid: Uuid,
        share: &str,
        snapshot: &str,
    ) -> Result<Option<Replica>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM replicas
                     WHERE pool = ?1 AND source_uuid = ?2 AND share = ?3 AND snapshot = ?4"
                ),
                (pool, DbUuid(source_uuid), share, snapshot),
                from_row,
            )
            .optional()?)
    }

    /// Records a replica's ctransid (for replicas received before it was kept).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn set_replica_ctransid(&self, id: i64, ctransid: u64) -> Result<()> {
        self.conn().execute(
            "UPDATE replicas SET ctransid = ?2 WHERE id = ?1",
            (id, ctransid),
        )?;
        Ok(())
    }

    /// Forgets a replica (after its subvolume was deleted or found gone).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn remove_replica(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM replicas WHERE id = ?1", [id])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::in_memory;
    use super::super::{Kind, NewReceive, ReceiveFilter};
    use super::*;

    fn new_replica<'a>(source_uuid: Uuid, snapshot: &'a str) -> NewReplica<'a> {
        NewReplica {
            pool: "backup",
            pool_path: Path::new("/mnt/backup"),
            source: "nas1",
            source_uuid,
            share: "photos",
            snapshot,
            received_uuid: Uuid::new_v4(),
            stream_bytes: 42,
            created_at: None,
            ctransid: Some(9),
        }
    }

    fn receive(store: &Store, snapshot: &str) -> i64 {
        store
            .begin_receive(&NewReceive {
                source: "nas1",
                source_uuid: None,
                share: "photos",
                pool: "backup",
                snapshot,
                parent: None,
                kind: Kind::Full,
            })
            .expect("begin")
    }

    #[test]
    fn commit_records_the_replica_and_succeeds_the_row_together() {
        let mut store = in_memory();
        store
            .add_pool("backup", "/mnt/backup", None)
            .expect("pool 1");
        let src = Uuid::new_v4();
        let row = receive(&store, "s1");
        let r = new_replica(src, "s1");
        store.commit_replica(row, &r).expect("commit");
        let held = store.replicas("backup", src, "photos").expect("list");
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].received_uuid, r.received_uuid);
        let rows = store.receive_history(&ReceiveFilter::default()).expect("h");
        assert_eq!(rows[0].attempt.status, Status::Succeeded);
        assert_eq!(
            (rows[0].attempt.received_uuid, rows[0].attempt.stream_bytes),
            (Some(r.received_uuid), 42)
        );

        // A duplicate fails and leaves the second row running for the caller to fail.
        let again = receive(&store, "s1");
        assert!(store
            .commit_replica(again, &new_replica(src, "s1"))
            .is_err());
        let rows = store.receive_history(&ReceiveFilter::default()).expect("h");
        assert_eq!(rows[0].attempt.status, Status::Running);
        assert_eq!(store.pool_replicas("backup").expect("all").len(), 1);
    }

    /// Pins: newest first was by received_at, so a clock that jumped made an
    /// older replica the "newest" and retention deleted the real newest.
    #[test]
    fn newest_is_the_last_committed_whatever_the_clock_says() {
        let mut store = in_memory();
        store
            .add_pool("backup", "/mnt/backup", None)
            .expect("pool 1");
        let src = Uuid::new_v4();
        for snap in ["s1", "s2"] {
            let row = receive(&store, snap);
            store
                .commit_replica(row, &new_replica(src, snap))
                .expect("commit");
        }
        store
            .conn()
            .execute(
                "UPDATE replicas SET received_at = '2999-01-01T00:00:00.000Z' WHERE snapshot = 's1'",
                [],
            )
            .expect("future");
        let held = store.replicas("backup", src, "photos").expect("list");
        assert_eq!(held[0].snapshot, "s2");
        let newest = store.newest_replicas().expect("newest");
        assert_eq!(newest[0].0.snapshot, "s2");
    }

    /// Pins: `pool remove` during a receive let the replica land in a pool
    /// that was no longer registered.
    #[test]
    fn a_replica_is_not_recorded_into_a_pool_removed_during_its_receive() {
        let mut store = in_memory();
        store
            .add_pool("backup", "/mnt/backup", None)
            .expect("pool 1");
        let src = Uuid::new_v4();
        let row = receive(&store, "s1");
        store.remove_pool("backup").expect("removed");
        match store.commit_replica(row, &new_replica(src, "s1")) {
            Err(crate::store::Error::PoolGone(p)) => assert_eq!(p, "backup"),
            other => panic!("expected PoolGone, got {other:?}"),
        }
        // Re-added under the same name elsewhere is another pool.
        store
            .add_pool("backup", "/mnt/other", None)
            .expect("pool 2");
        assert!(store.commit_replica(row, &new_replica(src, "s1")).is_err());
        assert!(store.pool_replicas("backup").expect("all").is_empty());
        let rows = store.receive_history(&ReceiveFilter::default()).expect("h");
        assert_eq!(
            rows[0].attempt.status,
            Status::Running,
            "left for the caller to fail"
        );
    }

    #[test]
    fn newest_first_and_scoped_to_pool_source_and_share() {
        let mut store = in_memory();
        store
            .add_pool("backup", "/mnt/backup", None)
            .expect("pool 1");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for (src, snap) in [(a, "s1"), (b, "s1"), (a, "s2"), (a, "s3")] {
            let row = receive(&store, snap);
            store
                .commit_replica(row, &new_replica(src, snap))
                .expect("commit");
        }
        let names: Vec<_> = store
            .replicas("backup", a, "photos")
            .expect("list")
            .into_iter()
            .map(|r| r.snapshot)
            .collect();
        assert_eq!(names, ["s3", "s2", "s1"]);
        assert!(store.replicas("other", a, "photos").expect("l").is_empty());
        let s2 = store
            .replica("backup", a, "photos", "s2")
            .expect("q")
            .expect("held");
        assert!(store.remove_replica(s2.id).expect("rm"));
        assert!(store
            .replica("backup", a, "photos", "s2")
            .expect("q")
            .is_none());
    }
}
