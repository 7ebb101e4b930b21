//! Making a replica directory ready for one receive: created safely, cleared of
//! partials, and free of anything under the name about to be received.

use std::path::PathBuf;

use tokio::time::timeout;
use uuid::Uuid;

use super::error::PrepareError;
use super::failback;
use super::shared::Shared;
use crate::replica_layout::{create_replica_dir, delete_partials};
use crate::store::Pool;
use crate::wire::Begin;

/// Creates the replica directory and clears partials left in it, so btrfs
/// receive never meets a half-received subvolume of the same name. A complete
/// subvolume of that name that no row records is refused, not deleted: a failed
/// receive deletes `dir/<snapshot>` as its own, so it must not be someone else's.
/// Only the holder of the share's lock may call this.
///
/// # Errors
///
/// [`PrepareError`]; nothing was received yet.
pub(super) async fn prepare(
    shared: &Shared,
    pool: &Pool,
    source: Uuid,
    b: &Begin,
) -> Result<PathBuf, PrepareError> {
    let share = &b.share;
    let dir = create_replica_dir(&pool.path, source, share).map_err(|source| {
        PrepareError::CreateDir {
            pool: pool.name.clone(),
            source,
        }
    })?;
    let held = shared.db(|s| s.replicas(&pool.name, source, share))?;
    let attempted = shared.db(|s| s.received_names(&pool.name, source, share))?;
    let after = shared.config.btrfs_timeout;
    match timeout(after, delete_partials(&dir, &held, &attempted)).await {
        Err(_) => return Err(PrepareError::ClearTimedOut { dir, after }),
        Ok(Err(source)) => return Err(PrepareError::Clear { dir, source }),
        Ok(Ok(_)) => {}
    }
    let path = dir.join(&b.snapshot);
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(PrepareError::Occupied { path });
    }
    // A failback's parent is one of this appliance's own snapshots: btrfs
    // receive finds it only as a copy inside `dir`, marked as received from it.
    if let Some(parent) = b.parent.as_ref().filter(|_| b.failback) {
        failback::make(shared, pool, &dir, source, share, parent).await?;
    }
    Ok(dir)
}
