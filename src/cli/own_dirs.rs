//! ferry's own directories are never user data: a pool's `.ferry/` holds the
//! replicas it receives, `.ferry-snapshots/` and every task's snapshot dir the
//! snapshots it sends, and retention deletes what is in them.

use std::ffi::OsStr;
use std::path::Path;

use super::ctx::bad_input;
use crate::receiver::FERRY_DIR;
use crate::store::Store;

/// Where a task's snapshots go by default: beside the share, on its filesystem.
pub const SNAPSHOT_DIR: &str = ".ferry-snapshots";

/// Refuses `path` (canonical) as `what` ("pool", "share", "snapshot dir")
/// when it lies inside one of ferry's own directories, naming which and why.
///
/// # Errors
///
/// `BadInput` naming the directory; the store's errors.
pub fn refuse_own(what: &str, path: &Path, store: &Store) -> anyhow::Result<()> {
    let inside = |name: &str| path.components().any(|c| c.as_os_str() == OsStr::new(name));
    if inside(FERRY_DIR) {
        bad_input!(
            "{what} path {} is inside a pool's {FERRY_DIR} directory, where ferry keeps the \
             replicas it receives (retention deletes them); give a subvolume of your own",
            path.display()
        );
    }
    if what == "snapshot dir" {
        // Snapshots belong in the directories below; only replicas must stay apart.
        return Ok(());
    }
    if inside(SNAPSHOT_DIR) {
        bad_input!(
            "{what} path {} is inside {SNAPSHOT_DIR}, where ferry keeps the snapshots it \
             sends (retention deletes them); give a subvolume of your own",
            path.display()
        );
    }
    for task in store.tasks()? {
        if path.starts_with(&task.snapshot_dir) {
            bad_input!(
                "{what} path {} is inside task {}'s snapshot dir {}, where ferry keeps the \
                 snapshots it sends (retention deletes them); give a subvolume of your own",
                path.display(),
                task.name,
                task.snapshot_dir.display()
            );
        }
    }
    Ok(())
}
