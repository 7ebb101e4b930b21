//! The receiver's table against its disk: replicas deleted by hand are
//! forgotten and `latest` repaired, so Inventory and `status` offer only what is there.
//!
//! [`forget_gone`] is the check itself (startup recovery uses it too);
//! [`audit`] runs it over every line of every pool that no receive holds, as
//! the periodic housekeeping job, which also catches lines no sender asks for
//! any more.

use std::path::Path;

use super::error::Error;
use super::pool;
use super::shared::Shared;
use crate::replica_layout::{repair_latest, replica_dirs, replica_state, ReplicaState, FERRY_DIR};
use crate::store::Replica;

/// Forgets the replicas of `held` (one line's rows, in `dir`) whose subvolume
/// is gone, points `latest` at the newest one left, and returns those left.
/// A replica that is there but no longer intact stays recorded and on disk
/// (logged): only a person may decide it is garbage.
///
/// # Errors
///
/// [`Error::Store`] when a row cannot be removed.
pub(super) async fn forget_gone(
    shared: &Shared,
    pool: &str,
    dir: &Path,
    held: Vec<Replica>,
) -> Result<(Vec<Replica>, usize), Error> {
    let mut present = Vec::new();
    let mut forgotten = 0;
    for r in held {
        match replica_state(dir, &r).await {
            Ok(ReplicaState::Gone) => {
                shared.db(|s| s.remove_replica(r.id))?;
                forgotten += 1;
                tracing::warn!(pool, snapshot = %r.snapshot, "replica's subvolume is gone; forgot it");
                continue;
            }
            Ok(ReplicaState::Intact { record }) => {
                if let Some(c) = record {
                    shared.db(|s| s.set_replica_ctransid(r.id, c))?;
                }
            }
            Ok(ReplicaState::Withheld(why)) => tracing::warn!(pool, snapshot = %r.snapshot,
                "replica {why}; left on disk, not offered as a parent"),
            Err(e) => tracing::warn!(pool, snapshot = %r.snapshot, error = %e,
                "cannot inspect a replica; left on disk"),
        }
        present.push(r);
    }
    // The last committed, by id: received_at is a wall clock and can jump.
    let newest = present.iter().max_by_key(|r| r.id);
    if let Err(e) = repair_latest(dir, newest.map(|r| r.snapshot.as_str())) {
        tracing::warn!(pool, dir = %dir.display(), error = %e, "cannot repair the latest link");
    }
    Ok((present, forgotten))
}

/// Audits every registered pool: each replica line that no receive is
/// writing right now (its share lock is free) goes through [`forget_gone`].
/// A pool that is unmounted or on another filesystem is skipped, never read
/// as "everything is gone". Returns a line for the log.
///
/// # Errors
///
/// [`Error::Store`] when the pools or replicas cannot be read; a broken
/// directory is logged and skipped.
pub async fn audit(shared: &Shared) -> Result<String, Error> {
    let (mut lines, mut forgotten) = (0, 0);
    for pool in shared.db(|s| s.pools())? {
        let ferry = pool.path.join(FERRY_DIR);
        if !ferry.is_dir() {
            continue;
        }
        if let Err(reason) = pool::check(shared, &pool) {
            tracing::warn!(pool = %pool.name, "audit skipped the pool: {reason}");
            continue;
        }
        let replicas = shared.db(|s| s.pool_replicas(&pool.name))?;
        for (source, share, dir) in replica_dirs(&ferry)? {
            // A receive in progress owns its line; the next audit looks again.
            let Some(_lock) = shared.lock_share(source, &share) else {
                continue;
            };
            let held: Vec<Replica> = replicas
                .iter()
                .filter(|r| r.source_uuid == source && r.share == share)
                .cloned()
                .collect();
            match forget_gone(shared, &pool.name, &dir, held).await {
                Ok((_, n)) => forgotten += n,
                Err(e) => tracing::error!(pool = %pool.name, dir = %dir.display(), error = %e,
                    "audit of a replica directory failed"),
            }
            lines += 1;
        }
    }
    Ok(format!(
        "audit: {lines} replica line(s) checked, {forgotten} replica(s) gone from disk forgotten"
    ))
}
