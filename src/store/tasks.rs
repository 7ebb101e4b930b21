//! Replication tasks: which share goes to which appliance and pool, and the
//! settings `task add` sets and `task set` edits (schedule, retention, hooks).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};

use super::db::{now, Result, Store, Ts};
use super::send_compressed::SendCompressed;

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
    /// The task's bandwidth limit, in bytes per second on the wire; 0: none.
    pub bwlimit: u64,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Retention grid on this appliance, canonical (`24h 7d`, or `none`).
    pub preserve_source: String,
    /// Retention grid asked of the target, canonical.
    pub preserve_target: String,
    /// No snapshot when the share has not changed since the last confirmed one.
    pub skip_unchanged: bool,
    pub hooks: TaskHooks,
    /// Whether version 2 streams carry compressed extents as they are.
    pub send_compressed: SendCompressed,
    /// The replica line's name on the target (`--replica-name`); `None`: the
    /// share's directory name. See [`Task::share_name`].
    pub replica_name: Option<String>,
}

/// A task's hook commands. `None` follows the configuration's default; an
/// empty command is no hook for this task, whatever the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskHooks {
    pub pre_snapshot: Option<String>,
    pub post_snapshot: Option<String>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

/// Everything about a task that `task set` may change: all but its name,
/// share, target, pool and snapshot directory, which the incremental chain
/// and the target's replica line depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSettings {
    /// Canonical schedule (see `schedule::Schedule::canonical`).
    pub frequency: String,
    /// The IANA zone of a cron schedule (and of retention periods); `None`:
    /// the system's.
    pub timezone: Option<String>,
    pub meta_port: Option<u16>,
    pub data_port: Option<u16>,
    pub keep_source: u32,
    pub keep_target: u32,
    pub preserve_source: String,
    pub preserve_target: String,
    pub compress: i32,
    pub compress_auto: bool,
    /// Bytes per second on the wire; 0: none.
    pub bwlimit: u64,
    pub skip_unchanged: bool,
    pub hooks: TaskHooks,
    pub send_compressed: SendCompressed,
}

impl Task {
    /// The settings `task set` edits.
    pub fn settings(&self) -> TaskSettings {
        TaskSettings {
            frequency: self.frequency.clone(),
            timezone: self.timezone.clone(),
            meta_port: self.meta_port,
            data_port: self.data_port,
            keep_source: self.keep_source,
            keep_target: self.keep_target,
            preserve_source: self.preserve_source.clone(),
            preserve_target: self.preserve_target.clone(),
            compress: self.compress,
            compress_auto: self.compress_auto,
            bwlimit: self.bwlimit,
            skip_unchanged: self.skip_unchanged,
            hooks: self.hooks.clone(),
            send_compressed: self.send_compressed,
        }
    }

    /// The share's name as replicated: its replica line on the target (the
    /// `share` of Inventory and Begin) and the start of its snapshots' names.
    /// `--replica-name` when given, else the last component of its path.
    pub fn share_name(&self) -> String {
        match &self.replica_name {
            Some(name) => name.clone(),
            None => self
                .share
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub name: &'a str,
    pub share: &'a str,
    pub target_id: i64,
    pub pool: &'a str,
    pub snapshot_dir: &'a str,
    /// `--replica-name`; `None`: the share's directory name.
    pub replica_name: Option<&'a str>,
    pub settings: &'a TaskSettings,
}

const SELECT: &str = "SELECT t.id, t.name, t.share, t.target_id, a.name, t.pool, t.frequency,
        t.meta_port, t.data_port, t.keep_source, t.keep_target, t.snapshot_dir, t.compress,
        t.enabled, t.created_at, t.updated_at, t.compress_auto, t.timezone, t.preserve_source,
        t.preserve_target, t.skip_unchanged, t.pre_snapshot, t.post_snapshot, t.on_success,
        t.on_failure, t.bwlimit, t.send_compressed, t.replica_name
    FROM tasks t JOIN appliances a ON a.id = t.target_id";

/// The columns `task set` writes, in `settings_params` order from ?2 on.
const SETTINGS: &str = "frequency = ?2, meta_port = ?3, data_port = ?4, keep_source = ?5,
    keep_target = ?6, preserve_source = ?7, preserve_target = ?8, compress = ?9,
    compress_auto = ?10, skip_unchanged = ?11, pre_snapshot = ?12, post_snapshot = ?13,
    on_success = ?14, on_failure = ?15, timezone = ?16, bwlimit = ?17, send_compressed = ?18";

fn settings_params(s: &TaskSettings) -> [&dyn rusqlite::ToSql; 17] {
    [
        &s.frequency,
        &s.meta_port,
        &s.data_port,
        &s.keep_source,
        &s.keep_target,
        &s.preserve_source,
        &s.preserve_target,
        &s.compress,
        &s.compress_auto,
        &s.skip_unchanged,
        &s.hooks.pre_snapshot,
        &s.hooks.post_snapshot,
        &s.hooks.on_success,
        &s.hooks.on_failure,
        &s.timezone,
        &s.bwlimit,
        &s.send_compressed,
    ]
}

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
        preserve_source: r.get(18)?,
        preserve_target: r.get(19)?,
        skip_unchanged: r.get(20)?,
        hooks: TaskHooks {
            pre_snapshot: r.get(21)?,
            post_snapshot: r.get(22)?,
            on_success: r.get(23)?,
            on_failure: r.get(24)?,
        },
        bwlimit: r.get(25)?,
        send_compressed: r.get(26)?,
        replica_name: r.get(27)?,
    })
}

impl Store {
    /// Records a task, enabled; returns its id. Its settings go in as `task
    /// set` writes them, so both commands store the same thing.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// A name already taken fails the UNIQUE constraint; an unknown `target_id` fails
    /// the foreign key; out-of-range ports, keeps or levels fail their CHECKs.
    pub fn add_task(&self, t: &NewTask<'_>) -> Result<i64> {
        let now = Ts(now());
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO tasks (name, share, target_id, pool, frequency, keep_source, keep_target,
                snapshot_dir, compress, enabled, created_at, updated_at, replica_name)
             VALUES (?1, ?2, ?3, ?4, '', 1, 1, ?5, 0, 1, ?6, ?6, ?7)",
            rusqlite::params![
                t.name,
                t.share,
                t.target_id,
                t.pool,
                t.snapshot_dir,
                now,
                t.replica_name
            ],
        )?;
        let id = tx.last_insert_rowid();
        write_settings(&tx, t.name, t.settings, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// Replaces a task's settings and stamps `updated_at`, which the running
    /// scheduler's signature of the tasks table notices. Returns false when
    /// no task has that name.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails, or a value
    /// fails its CHECK.
    pub fn set_task_settings(&self, name: &str, settings: &TaskSettings) -> Result<bool> {
        let conn = self.conn();
        Ok(write_settings(&conn, name, settings, Ts(now()))? > 0)
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
            &format!(
                "UPDATE tasks SET enabled = ?2, updated_at = {} WHERE name = ?1 AND enabled != ?2",
                next_stamp("?3")
            ),
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

fn write_settings(
    conn: &rusqlite::Connection,
    name: &str,
    settings: &TaskSettings,
    now: Ts,
) -> Result<usize> {
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&name];
    params.extend(settings_params(settings));
    params.push(&now);
    Ok(conn.execute(
        &format!(
            "UPDATE tasks SET {SETTINGS}, updated_at = {} WHERE name = ?1",
            next_stamp("?19")
        ),
        params.as_slice(),
    )?)
}

/// SQL for the `updated_at` of an edit made at `now` (a parameter): `now`, or
/// a millisecond past the newest `updated_at` of any task if that is not
/// earlier. The newest stamp is part of [`Store::tasks_signature`], so every
/// edit changes the signature, even two in one millisecond or a clock that
/// stepped back.
fn next_stamp(now: &str) -> String {
    format!(
        "(SELECT max({now}, coalesce(strftime('%Y-%m-%dT%H:%M:%fZ', max(updated_at), '+0.001 seconds'), {now})) FROM tasks)"
    )
}

#[cfg(test)]
#[path = "tasks_tests.rs"]
mod tests;
