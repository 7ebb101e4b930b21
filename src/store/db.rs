//! Opening the state database (WAL, full sync, migrations) and the column types
//! every table file shares: timestamps and uuids as text.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use include_dir::{include_dir, Dir};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{Migrations, M};
use thiserror::Error;

pub use super::preflight::DB_FILE;
use super::preflight::{self, Problem};

/// How long a writer waits for another process's transaction before giving up.
/// The CLI, the sender and the receiver all write to one file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATIONS_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/migrations");

#[derive(Debug, Error)]
pub enum Error {
    #[error("no ferry state in {0}: run `ferry init` first, or point --state-dir at an initialized directory")]
    NotInitialized(PathBuf),
    #[error("state dir {0} is not a directory (a file is in the way); point --state-dir, FERRY_STATE_DIR or the config file's state_dir at a directory")]
    NotADirectory(PathBuf),
    #[error("cannot use the ferry state in {0}: permission denied; run ferry as root, as its daemons run")]
    PermissionDenied(PathBuf),
    #[error("state dir {0} is on a read-only filesystem, and ferry writes its database there; remount it read-write, or point --state-dir at a writable directory")]
    ReadOnly(PathBuf),
    #[error("cannot read {0}: {1}")]
    Unreadable(PathBuf, std::io::Error),
    #[error("the state database {0} is empty (0 bytes); `ferry init --repair` rebuilds it, keeping this appliance's uuid, key and certificate")]
    Empty(PathBuf),
    #[error("the state database {path} was written by a newer ferry (schema {found} > {supported}); upgrade ferry to use it")]
    Newer {
        path: PathBuf,
        found: usize,
        supported: usize,
    },
    #[error("cannot open the state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot bring the state database {path} to the current schema: {}", migrate_reason(.source))]
    Migrate {
        path: PathBuf,
        source: rusqlite_migration::Error,
    },
    #[error("migration file {name} is misnamed: {why}")]
    MigrationFile { name: String, why: String },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("pool {0} was removed (`ferry pool remove`) while the receive ran")]
    PoolGone(String),
}

impl Error {
    /// Whether the state directory itself is unusable as it is (missing, in
    /// the wrong place, another user's, read-only, empty, from a newer ferry):
    /// the user's to fix, and nothing was changed.
    pub fn is_state_dir_problem(&self) -> bool {
        matches!(
            self,
            Error::NotInitialized(_)
                | Error::NotADirectory(_)
                | Error::PermissionDenied(_)
                | Error::ReadOnly(_)
                | Error::Empty(_)
                | Error::Newer { .. }
        )
    }

    /// Whether another writer held the database past the busy timeout: the
    /// database is fine, only busy now, so trying again later may succeed.
    pub fn is_busy(&self) -> bool {
        let sql = match self {
            Error::Sql(e) | Error::Open { source: e, .. } => e,
            _ => return false,
        };
        matches!(
            sql.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Problem> for Error {
    fn from(p: Problem) -> Self {
        match p {
            Problem::NotInitialized(d) => Error::NotInitialized(d),
            Problem::NotADirectory(d) => Error::NotADirectory(d),
            Problem::PermissionDenied(d) => Error::PermissionDenied(d),
            Problem::ReadOnly(d) => Error::ReadOnly(d),
            Problem::Unreadable(d, e) => Error::Unreadable(d, e),
            Problem::Empty(d) => Error::Empty(d),
        }
    }
}

/// Checks `state_dir` and its database file before SQLite opens them.
///
/// # Errors
///
/// [`Error::NotInitialized`] when there is no database yet;
/// [`Error::NotADirectory`], [`Error::PermissionDenied`], [`Error::ReadOnly`]
/// and [`Error::Empty`] for what would otherwise surface as SQLite's "unable
/// to open database file", or as a silently created empty database.
pub fn check_state_dir(state_dir: &Path) -> Result<()> {
    Ok(preflight::check_state_dir(state_dir)?)
}

/// Refuses a database whose schema is newer than this binary's migrations:
/// rusqlite_migration would only say "migration number that is too high".
fn not_newer(conn: &Connection, path: &Path) -> Result<()> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let supported = MIGRATIONS_DIR.files().count();
    match usize::try_from(found) {
        Ok(found) if found > supported => Err(Error::Newer {
            path: path.to_path_buf(),
            found,
            supported,
        }),
        _ => Ok(()),
    }
}

/// A failed migration says what SQLite said; the migration's whole SQL text
/// (which rusqlite_migration includes) would not fit in a one-line error.
fn migrate_reason(e: &rusqlite_migration::Error) -> String {
    match e {
        rusqlite_migration::Error::RusqliteError { err, .. } => err.to_string(),
        other => other.to_string(),
    }
}

/// An open state database. The connection sits behind a mutex so a `Store` can
/// be shared by the tasks of a daemon; every call holds it only for one statement.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the database of an initialized state directory.
    ///
    /// # Errors
    ///
    /// What [`check_state_dir`](super::check_state_dir) finds wrong before
    /// SQLite opens anything ([`Error::NotInitialized`] when `state_dir` has no
    /// database, [`Error::Empty`], [`Error::ReadOnly`], ...); [`Error::Newer`] for
    /// a newer ferry's database; [`Error::Open`] when SQLite cannot open or
    /// configure it; [`Error::Migrate`] when its schema cannot be brought to this
    /// version; [`Error::MigrationFile`] when a built-in migration is misnamed.
    pub fn open(state_dir: &Path) -> Result<Self> {
        check_state_dir(state_dir)?;
        Self::open_file(&state_dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// Creates the database of a new state directory (used by `ferry init`).
    ///
    /// # Errors
    ///
    /// [`Error::Open`] when the file cannot be created or configured (a missing or
    /// read-only directory); [`Error::Migrate`] and [`Error::MigrationFile`] as for [`Store::open`].
    pub fn create(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join(DB_FILE);
        Self::open_file(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
    }

    fn open_file(path: &Path, flags: OpenFlags) -> Result<Self> {
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        not_newer(&conn, path)?;
        // WAL lets the CLI read while a daemon writes; FULL sync because history
        // rows are the user's record of what happened and must survive power loss.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrations()?
            .to_latest(&mut conn)
            .map_err(|source| Error::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// Another connection to the same database, for work that must not wait on
    /// this one's lock: progress writes off a transfer's data path, for one.
    ///
    /// # Errors
    ///
    /// As [`Store::open`]: [`Error::Open`] or [`Error::Migrate`].
    pub fn reopen(&self) -> Result<Self> {
        Self::open_file(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// The connection; a panic in another holder does not make it unusable.
    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes whenever another connection commits: a cheap way to notice that
    /// the CLI changed something.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`] when SQLite fails.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// The schema version (the number of the newest applied migration).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`] when SQLite fails.
    pub fn schema_version(&self) -> Result<usize> {
        let v: i64 = self
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok(usize::try_from(v).unwrap_or_default())
    }
}

/// Every migration in `migrations/`, in order. Files are `NNNN_name.sql`,
/// numbered from 0001 without gaps; a misnamed file is an error, not skipped.
///
/// # Errors
///
/// [`Error::MigrationFile`] when a file is not `NNNN_name.sql`, is out of sequence,
/// or is not UTF-8.
pub fn migrations() -> Result<Migrations<'static>> {
    let mut files: Vec<_> = MIGRATIONS_DIR.files().collect();
    files.sort_by_key(|f| f.path().to_path_buf());
    let mut steps = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let name = file.path().display().to_string();
        let bad = |why: &str| Error::MigrationFile {
            name: name.clone(),
            why: why.to_string(),
        };
        let number = name
            .strip_suffix(".sql")
            .and_then(|stem| stem.split_once('_'))
            .and_then(|(n, _)| n.parse::<usize>().ok())
            .ok_or_else(|| bad("expected NNNN_name.sql"))?;
        if number != i + 1 {
            return Err(bad(&format!("expected number {:04}", i + 1)));
        }
        let sql = file.contents_utf8().ok_or_else(|| bad("not valid UTF-8"))?;
        steps.push(M::up(sql));
    }
    Ok(Migrations::new(steps))
}

/// The current time as stored: RFC 3339, UTC, milliseconds.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A timestamp column. Stored as RFC 3339 text so it sorts and reads well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ts(pub DateTime<Utc>);

impl ToSql for Ts {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(
            self.0.to_rfc3339_opts(SecondsFormat::Millis, true),
        ))
    }
}

impl FromSql for Ts {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        DateTime::parse_from_rfc3339(text)
            .map(|t| Ts(t.with_timezone(&Utc)))
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// A uuid column, stored as hyphenated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DbUuid(pub uuid::Uuid);

impl ToSql for DbUuid {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.hyphenated().to_string()))
    }
}

impl FromSql for DbUuid {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        uuid::Uuid::parse_str(value.as_str()?)
            .map(DbUuid)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
pub(crate) fn in_memory() -> Store {
    let mut conn = Connection::open_in_memory().expect("in-memory sqlite");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("pragma");
    migrations()
        .expect("migrations")
        .to_latest(&mut conn)
        .expect("migrate");
    Store {
        conn: Mutex::new(conn),
        path: PathBuf::from(":memory:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid_and_numbered() {
        let m = migrations().expect("migration files are well named");
        m.validate().expect("migrations apply to an empty database");
    }

    #[test]
    fn timestamps_round_trip_through_text() {
        let store = in_memory();
        let t = Ts(DateTime::parse_from_rfc3339("2026-11-21T05:37:56.123Z")
            .expect("valid")
            .with_timezone(&Utc));
        let back: Ts = store
            .conn()
            .query_row("SELECT ?1", [t], |r| r.get(0))
            .expect("query");
        assert_eq!(back, t);
        let text: String = store
            .conn()
            .query_row("SELECT ?1", [t], |r| r.get(0))
            .expect("query");
        assert_eq!(text, "2026-11-21T05:37:56.123Z");
    }
}
