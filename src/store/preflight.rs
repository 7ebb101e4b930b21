//! What can be wrong with a state directory before SQLite opens it, each said
//! with its fix: a file in its place, another user's directory, a read-only
//! filesystem, an empty database, a database from a newer ferry.

use std::fs;
use std::io;
use std::path::Path;

use std::path::PathBuf;

use nix::unistd::{access, AccessFlags};

/// The database file inside the state directory.
pub const DB_FILE: &str = "state.db";

/// What is wrong with a state directory; `store::Error` has a variant for each.
#[derive(Debug)]
pub enum Problem {
    NotInitialized(PathBuf),
    NotADirectory(PathBuf),
    PermissionDenied(PathBuf),
    ReadOnly(PathBuf),
    Unreadable(PathBuf, io::Error),
    Empty(PathBuf),
}

type Result<T> = std::result::Result<T, Problem>;
use Problem as Error;

/// Checks `state_dir` and its database file before they are opened.
///
/// # Errors
///
/// [`Problem::NotInitialized`] when there is no database yet;
/// [`Problem::NotADirectory`], [`Problem::PermissionDenied`],
/// [`Problem::ReadOnly`] and [`Problem::Empty`] for what would otherwise
/// surface as SQLite's "unable to open database file", or as a silently
/// created empty database.
pub fn check_state_dir(state_dir: &Path) -> Result<()> {
    let not_dir = || Error::NotADirectory(state_dir.to_path_buf());
    let denied = || Error::PermissionDenied(state_dir.to_path_buf());
    match fs::metadata(state_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotInitialized(state_dir.to_path_buf()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Err(not_dir()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(denied()),
        Err(e) => return Err(Error::Unreadable(state_dir.to_path_buf(), e)),
    }
    let db = state_dir.join(DB_FILE);
    match fs::metadata(&db) {
        Ok(m) if m.len() == 0 && m.is_file() => return Err(Error::Empty(db)),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotInitialized(state_dir.to_path_buf()))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(denied()),
        Err(e) => return Err(Error::Unreadable(db, e)),
    }
    writable(state_dir)
}

/// SQLite writes beside the database (its WAL and shared-memory files), so
/// even a command that only reads needs a writable state dir.
///
/// # Errors
///
/// [`Problem::ReadOnly`] or [`Problem::PermissionDenied`].
fn writable(state_dir: &Path) -> Result<()> {
    match access(state_dir, AccessFlags::W_OK) {
        Err(nix::errno::Errno::EROFS) => Err(Error::ReadOnly(state_dir.to_path_buf())),
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => {
            Err(Error::PermissionDenied(state_dir.to_path_buf()))
        }
        _ => Ok(()),
    }
}
