//! Replication tasks: which share goes to which appliance and pool, how often, and
//! how many snapshots each side keeps.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};

use super::db::{now, Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: i64,
    pub name: String,
    /// The share's subvolume path (absolute).
    pub share: PathBuf,
    pub target_id: i64,
    /// The target appliance's name (joined in for display).
    pub target: String,
    /// The pool's name on the target.
    pub pool: String,
    /// The schedule in its canonical form (see `schedule::Schedule::canonical`).
    pub frequency: String,
    /// The IANA zone a cron frequency is evaluated in; `None`: the system's.
    pub timezone: Option<String>,
    /// The task's bandwidth limit, in bytes per second on the wire; 0: none.
    pub bwlimit: u64,
    /// Port overrides; `None` means the appliance's ports.
    pub meta_port: Option<u16>,
    pub data_port: Option<u16>,
    /// Snapshots kept on this appliance (at least 1; the common base is always kept).
    pub keep_source: u32,
    /// Replicas kept on the target (at least 1).
    pub keep_target: u32,
    pub snapshot_dir: PathBuf,
    /// zstd level for the stream; 0 sends it uncompressed.
    pub compress: i32,
    /// The level is only where the stream starts: it follows the bottleneck.
    pub compress_auto: bool,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// The share's name: the last component of its path, which names it on the target.
    pub fn share_name(&self) -> String {
        self.share
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub name: &'a str,
    pub share: &'a str,
    pub target_id: i64,
    pub pool: &'a str,
    pub frequency: &'a str,
    pub timezone: Option<&'a str>,
    pub meta_port: Option<u16>,
    pub data_port: Option<u16>,
    pub keep_source: u32,
    pub keep_target: u32,
    pub snapshot_dir: &'a str,
    pub compress: i32,
    pub compress_auto: bool,
    /// Bytes per second on the wire; 0: none.
    pub bwlimit: u64,
}

const SELECT: &str = "SELECT t.id, t.name, t.share, t.target_id, a.name, t.pool, t.frequency,
        t.meta_port, t.data_port, t.keep_source, t.keep_target, t.snapshot_dir, t.compress,
        t.enabled, t.created_at, t.updated_at, t.compress_auto, t.timezone, t.bwlimit
    FROM tasks t JOIN appliances a ON a.id = t.target_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        name: r.get(1)?,
        share: PathBuf::from(r.get::<_, String>(2)?),
        target_id: r.get(3)?,
        target: r.get(4)?,
        pool: r.get(5)?,
        frequency: r.get(6)?,
        meta_port: r.get(7)?,
        data_port: r.get(8)?,
        keep_source: r.get(9)?,
        keep_target: r.get(10)?,
        snapshot_dir: PathBuf::from(r.get::<_, String>(11)?),
        compress: r.get(12)?,
        enabled: r.get(13)?,
        created_at: r.get::<_, Ts>(14)?.0,
        updated_at: r.get::<_, Ts>(15)?.0,
        compress_auto: r.get(16)?,
        timezone: r.get(17)?,
        bwlimit: r.get(18)?,
    })
}

impl Store {
    /// Records a task, enabled; returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// A name already taken fails the UNIQUE constraint; an unknown `target_id` fails
    /// the foreign key; out-of-range ports, keeps or levels fail their CHECKs.
    pub fn add_task(&self, t: &NewTask<'_>) -> Result<i64> {
        let now = Ts(now());
        self.conn().execute(
            "INSERT INTO tasks (name, share, target_id, pool, frequency, meta_port, data_port,
                keep_source, keep_target, snapshot_dir, compress, enabled, created_at, updated_at,
                compress_auto, timezone, bwlimit)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?12, ?13, ?14, ?15)",
            rusqlite::params![
                t.name,
                t.share,
                t.target_id,
                t.pool,
                t.frequency,
                t.meta_port,
                t.data_port,
                t.keep_source,
                t.keep_target,
                t.snapshot_dir,
                t.compress,
                now,
                t.compress_auto,
                t.timezone,
                t.bwlimit,
            ],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Every task, by name, with its target appliance's name.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn tasks(&self) -> Result<Vec<Task>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY t.name"))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The task by that name, if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn task(&self, name: &str) -> Result<Option<Task>> {
        Ok(self
            .conn()
            .query_row(&format!("{SELECT} WHERE t.name = ?1"), [name], from_row)
            .optional()?)
    }

    /// A value that changes whenever a task is added, deleted, enabled, disabled
    /// or edited: the scheduler polls it to pick up CLI changes. (SQLite's
    /// data_version would also change with every history row a run writes.)
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn tasks_signature(&self) -> Result<String> {
        Ok(self.conn().query_row(
            "SELECT count(*) || '/' || coalesce(sum(id), 0) || '/' || coalesce(sum(id * enabled), 0)
                 || '/' || coalesce(max(updated_at), '')
             FROM tasks",
            [],
            |r| r.get(0),
        )?)
    }

    /// Names of the tasks that send to an appliance (they block its removal).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn tasks_targeting(&self, appliance_id: i64) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name FROM tasks WHERE target_id = ?1 ORDER BY name")?;
        let rows = stmt.query_map([appliance_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Turns a task on or off; returns false when it already was in that state.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn set_task_enabled(&self, name: &str, enabled: bool) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE tasks SET enabled = ?2, updated_at = ?3 WHERE name = ?1 AND enabled != ?2",
            (name, enabled, Ts(now())),
        )?;
        Ok(n > 0)
    }

    /// Deletes a task. Its history stays (rows keep the task's name).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn delete_task(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM tasks WHERE name = ?1", [name])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::in_memory;
    use super::super::NewAppliance;
    use super::*;

    pub(crate) fn photos(target_id: i64) -> NewTask<'static> {
        NewTask {
            name: "photos",
            share: "/mnt/main/photos",
            target_id,
            pool: "backup",
            frequency: "300",
            timezone: None,
            meta_port: None,
            data_port: Some(20002),
            keep_source: 3,
            keep_target: 5,
            snapshot_dir: "/mnt/main/.ferry-snapshots/photos",
            compress: 3,
            compress_auto: true,
            bwlimit: 0,
        }
    }

    #[test]
    fn add_show_toggle_delete() {
        let store = in_memory();
        let target = store
            .add_appliance(&NewAppliance {
                name: "nas2",
                address: "192.0.2.2",
                fingerprint: "SHA256:00",
                meta_port: 10003,
                data_port: 10002,
            })
            .expect("appliance");
        store.add_task(&photos(target)).expect("add");
        let t = store.task("photos").expect("q").expect("present");
        assert_eq!(t.target, "nas2");
        assert_eq!(t.share_name(), "photos");
        assert_eq!((t.meta_port, t.data_port), (None, Some(20002)));
        assert!(t.enabled);
        let before = store.tasks_signature().expect("signature");
        assert!(store.set_task_enabled("photos", false).expect("disable"));
        assert_ne!(store.tasks_signature().expect("signature"), before);
        assert!(!store.set_task_enabled("photos", false).expect("again"));
        assert_eq!(store.tasks_targeting(target).expect("q"), vec!["photos"]);
        // The appliance cannot go while a task targets it.
        assert!(store.remove_appliance("nas2").is_err());
        assert!(store.delete_task("photos").expect("delete"));
        assert!(store.remove_appliance("nas2").expect("now it can"));
    }
}
