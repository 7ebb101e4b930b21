//! Pools: local btrfs filesystems that accept replicas from peers.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};
use uuid::Uuid;

use super::db::{now, DbUuid, Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub id: i64,
    pub name: String,
    pub path: PathBuf,
    pub created_at: DateTime<Utc>,
    /// The btrfs filesystem it was added on; `None` until first recorded.
    pub fs_uuid: Option<Uuid>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Pool> {
    Ok(Pool {
        id: r.get(0)?,
        name: r.get(1)?,
        path: PathBuf::from(r.get::<_, String>(2)?),
        created_at: r.get::<_, Ts>(3)?.0,
        fs_uuid: r.get::<_, Option<DbUuid>>(4)?.map(|u| u.0),
    })
}

impl Store {
    /// Registers a pool. `path` must be absolute and valid UTF-8 (checked by the
    /// caller); `fs_uuid` is the btrfs filesystem it is on.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// A name or path already recorded fails the UNIQUE constraint.
    pub fn add_pool(&self, name: &str, path: &str, fs_uuid: Option<Uuid>) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO pools (name, path, created_at, fs_uuid) VALUES (?1, ?2, ?3, ?4)",
            (name, path, Ts(now()), fs_uuid.map(DbUuid)),
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Records the filesystem of a pool added before `fs_uuid` existed; a
    /// recorded one is never overwritten.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn set_pool_fs_uuid(&self, id: i64, fs_uuid: Uuid) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE pools SET fs_uuid = ?2 WHERE id = ?1 AND fs_uuid IS NULL",
            (id, DbUuid(fs_uuid)),
        )? > 0)
    }

    /// Every pool, by name.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn pools(&self) -> Result<Vec<Pool>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, name, path, created_at, fs_uuid FROM pools ORDER BY name")?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether a pool named `name` is registered at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn pool_registered(&self, name: &str, path: &Path) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM pools WHERE name = ?1 AND path = ?2)",
            (name, path.to_string_lossy()),
            |r| r.get(0),
        )?)
    }

    /// The pool by that name, if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn pool(&self, name: &str) -> Result<Option<Pool>> {
        self.pool_where("name = ?1", name)
    }

    /// The pool at that path (as recorded: absolute, canonical), if any.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn pool_by_path(&self, path: &str) -> Result<Option<Pool>> {
        self.pool_where("path = ?1", path)
    }

    fn pool_where(&self, condition: &str, value: &str) -> Result<Option<Pool>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT id, name, path, created_at, fs_uuid FROM pools WHERE {condition}"),
                [value],
                from_row,
            )
            .optional()?)
    }

    /// Unregisters a pool; replicas already in it stay on disk.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn remove_pool(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM pools WHERE name = ?1", [name])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn add_list_remove() {
        let store = super::super::db::in_memory();
        store.add_pool("backup", "/mnt/backup", None).expect("add");
        assert!(store.add_pool("backup", "/mnt/other", None).is_err());
        assert!(store.add_pool("other", "/mnt/backup", None).is_err());
        let p = store
            .pool_by_path("/mnt/backup")
            .expect("q")
            .expect("present");
        assert_eq!((p.name.as_str(), p.fs_uuid), ("backup", None));
        let fs = uuid::Uuid::new_v4();
        assert!(store.set_pool_fs_uuid(p.id, fs).expect("set"));
        assert!(!store
            .set_pool_fs_uuid(p.id, uuid::Uuid::new_v4())
            .expect("kept"));
        assert_eq!(
            store.pool("backup").expect("q").expect("row").fs_uuid,
            Some(fs)
        );
        assert_eq!(store.pools().expect("list").len(), 1);
        assert!(store.remove_pool("backup").expect("rm"));
        assert!(store.pool("backup").expect("q").is_none());
    }
}
