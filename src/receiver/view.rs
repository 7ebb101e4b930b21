//! The record of what this receiver holds, kept in step with the disk:
//! replicas deleted by hand are forgotten and `latest` points at the newest one
//! left. Inventory does it for the line it is asked about; `ferry status` for
//! every line whose pool is there.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use uuid::Uuid;

use super::pool;
use crate::replica_layout::{lock_dir, repair_latest_locked, replica_dir};
use crate::store::{self, Replica, Store};

/// Why a line's record could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("{}: {source}", dir.display())]
    Disk {
        dir: std::path::PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Forgets the replicas of the line in `dir` whose subvolume is gone from
/// disk, through `forget` (which removes a row by id), then points `latest` at
/// the newest replica left (the last committed), all under the directory's
/// lock. `rows` is the line's record, newest first.
///
/// # Errors
///
/// [`RefreshError`]; what was forgotten before stays forgotten.
pub(super) fn repair_line(
    dir: &Path,
    rows: &[Replica],
    forget: impl Fn(i64) -> store::Result<bool>,
) -> Result<Vec<String>, RefreshError> {
    let disk = |source| RefreshError::Disk {
        dir: dir.to_path_buf(),
        source,
    };
    let _lock = lock_dir(dir).map_err(disk)?;
    let mut gone = Vec::new();
    let mut newest = None;
    for r in rows {
        match std::fs::symlink_metadata(dir.join(&r.snapshot)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                forget(r.id)?;
                tracing::warn!(dir = %dir.display(), snapshot = %r.snapshot,
                    "replica's subvolume is gone (deleted by hand?); forgot it");
                gone.push(r.snapshot.clone());
            }
            Err(e) => return Err(disk(e)),
            Ok(_) => {
                newest = newest.or(Some(r));
            }
        }
    }
    repair_latest_locked(dir, newest.map(|r| r.snapshot.as_str())).map_err(disk)?;
    Ok(gone)
}

/// For `ferry status` on a receiver: in every pool that is mounted on its
/// filesystem, forgets replicas deleted by hand and repairs `latest`. Lines
/// this process cannot read (not root: `.ferry` is private) are left as
/// recorded. Returns how many replicas were forgotten.
///
/// # Errors
///
/// The store's; a line that cannot be repaired is logged and skipped.
pub fn refresh(store: &Store) -> Result<usize, store::Error> {
    let mut forgotten = 0;
    for p in store.pools()? {
        if !pool::is_there(&p) {
            continue;
        }
        let mut lines: BTreeMap<(Uuid, String), Vec<Replica>> = BTreeMap::new();
        for r in store.pool_replicas(&p.name)? {
            lines
                .entry((r.source_uuid, r.share.clone()))
                .or_default()
                .push(r);
        }
        for ((source, share), mut rows) in lines {
            let dir = replica_dir(&p.path, source, &share);
            if std::fs::read_dir(&dir).is_err() {
                continue;
            }
            rows.sort_by_key(|r| std::cmp::Reverse(r.id));
            match repair_line(&dir, &rows, |id| store.remove_replica(id)) {
                Ok(gone) => forgotten += gone.len(),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot bring the replica record up to date")
                }
            }
        }
    }
    Ok(forgotten)
}
