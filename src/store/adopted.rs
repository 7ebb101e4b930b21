//! Replicas taken back from disk by `ferry replica adopt` after the state
//! database was lost: recorded like received ones, without a receive row.

use chrono::{DateTime, Utc};

use super::db::{DbUuid, Result, Store, Ts};
use super::replicas::NewReplica;

impl Store {
    /// Records the replicas of one line, in the order given (oldest received
    /// first, so "newest" stays the last one recorded), all or none. Each gets
    /// `received_at` as the time btrfs marked it received.
    ///
    /// # Errors
    ///
    /// [`Error::PoolGone`](crate::store::Error::PoolGone) when no pool of that
    /// name is registered at that path; [`Error::Sql`](crate::store::Error::Sql)
    /// when SQLite fails, and the UNIQUE constraint when one is recorded already.
    /// Nothing is written then.
    pub fn adopt_replicas(&self, replicas: &[(NewReplica<'_>, DateTime<Utc>)]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (r, received_at) in replicas {
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
                    stream_bytes, received_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    r.pool,
                    r.source,
                    DbUuid(r.source_uuid),
                    r.share,
                    r.snapshot,
                    DbUuid(r.received_uuid),
                    r.stream_bytes,
                    Ts(*received_at),
                    r.created_at.map(Ts),
                ],
            )?;
        }
        tx.commit()?;
        Ok(replicas.len())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use uuid::Uuid;

    use super::*;

    #[test]
    fn adopted_replicas_are_recorded_oldest_first_all_or_none() {
        let store = crate::store::db::in_memory();
        store.add_pool("backup", "/mnt/backup", None).expect("pool");
        let src = Uuid::new_v4();
        let new = |snapshot| NewReplica {
            pool: "backup",
            pool_path: Path::new("/mnt/backup"),
            source: "nas1",
            source_uuid: src,
            share: "photos",
            snapshot,
            received_uuid: Uuid::new_v4(),
            stream_bytes: 0,
            created_at: None,
            ctransid: None,
        };
        let t = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let n = store
            .adopt_replicas(&[(new("s1"), t), (new("s2"), t)])
            .expect("adopt");
        assert_eq!(n, 2);
        let held = store.replicas("backup", src, "photos").expect("list");
        assert_eq!(held[0].snapshot, "s2", "the last adopted is the newest");
        assert_eq!(held[1].received_at, t);
        // One already recorded: nothing of the batch is written.
        assert!(store
            .adopt_replicas(&[(new("s3"), t), (new("s1"), t)])
            .is_err());
        assert_eq!(store.replicas("backup", src, "photos").expect("l").len(), 2);
    }
}
