//! Pools: local btrfs filesystems that accept replicas from peers.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};

use super::{Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub id: i64,
    pub name: String,
    pub path: PathBuf,
    pub created_at: DateTime<Utc>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Pool> {
    Ok(Pool {
        id: r.get(0)?,
        name: r.get(1)?,
        path: PathBuf::from(r.get::<_, String>(2)?),
        created_at: r.get::<_, Ts>(3)?.0,
    })
}

impl Store {
    /// Registers a pool. `path` must be absolute and valid UTF-8 (checked by the caller).
    pub fn add_pool(&self, name: &str, path: &str) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO pools (name, path, created_at) VALUES (?1, ?2, ?3)",
            (name, path, Ts(super::now())),
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    pub fn pools(&self) -> Result<Vec<Pool>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, name, path, created_at FROM pools ORDER BY name")?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn pool(&self, name: &str) -> Result<Option<Pool>> {
        self.pool_where("name = ?1", name)
    }

    pub fn pool_by_path(&self, path: &str) -> Result<Option<Pool>> {
        self.pool_where("path = ?1", path)
    }

    fn pool_where(&self, condition: &str, value: &str) -> Result<Option<Pool>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT id, name, path, created_at FROM pools WHERE {condition}"),
                [value],
                from_row,
            )
            .optional()?)
    }

    /// Unregisters a pool; replicas already in it stay on disk.
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
        let store = super::super::in_memory();
        store.add_pool("backup", "/mnt/backup").expect("add");
        assert!(store.add_pool("backup", "/mnt/other").is_err());
        assert!(store.add_pool("other", "/mnt/backup").is_err());
        let p = store
            .pool_by_path("/mnt/backup")
            .expect("q")
            .expect("present");
        assert_eq!(p.name, "backup");
        assert_eq!(store.pools().expect("list").len(), 1);
        assert!(store.remove_pool("backup").expect("rm"));
        assert!(store.pool("backup").expect("q").is_none());
    }
}
