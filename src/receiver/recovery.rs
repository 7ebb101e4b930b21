//! The startup sweep: rows a crash left running are failed, partial receives are
//! deleted, replicas gone from disk are forgotten, and `latest` is repaired.

use std::collections::HashSet;
use std::path::Path;

use super::audit::forget_gone;
use super::error::Error;
use super::pool;
use super::shared::Shared;
use crate::replica_layout::{delete_partials, replica_dirs, FERRY_DIR};
use crate::store::Replica;

/// Startup: fails rows a crash left running, deletes partial subvolumes in every
/// registered pool's replica directories, forgets replicas whose subvolume is
/// gone, and repairs `latest`. A verified replica is never deleted.
pub(super) async fn recover(shared: &Shared) -> Result<(), Error> {
    let failed = shared.db(|s| {
        s.fail_running_receives("interrupted: the receiver stopped before this receive finished")
    })?;
    if failed > 0 {
        tracing::warn!(
            rows = failed,
            "marked receives left running by the last run as failed"
        );
    }
    for pool in shared.db(|s| s.pools())? {
        let ferry = pool.path.join(FERRY_DIR);
        if !ferry.is_dir() {
            continue;
        }
        if let Err(reason) = pool::check(shared, &pool) {
            tracing::warn!(pool = %pool.name, path = %pool.path.display(),
                "skipping the pool's recovery: {reason}");
            continue;
        }
        let replicas = shared.db(|s| s.pool_replicas(&pool.name))?;
        for (source, share, dir) in replica_dirs(&ferry)? {
            let held: Vec<Replica> = replicas
                .iter()
                .filter(|r| r.source_uuid == source && r.share == share)
                .cloned()
                .collect();
            let attempted = shared.db(|s| s.received_names(&pool.name, source, &share))?;
            // One broken directory must not keep the receiver from serving the rest.
            if let Err(e) = recover_dir(shared, &pool.name, &dir, held, &attempted).await {
                tracing::error!(pool = %pool.name, dir = %dir.display(), error = %e,
                    "startup recovery of a replica directory failed; partials may remain");
            }
        }
    }
    Ok(())
}

async fn recover_dir(
    shared: &Shared,
    pool: &str,
    dir: &Path,
    held: Vec<Replica>,
    attempted: &HashSet<String>,
) -> Result<(), Error> {
    for name in delete_partials(dir, &held, attempted).await? {
        tracing::warn!(pool, dir = %dir.display(), snapshot = name, "deleted a partial receive");
    }
    forget_gone(shared, pool, dir, held).await?;
    Ok(())
}
