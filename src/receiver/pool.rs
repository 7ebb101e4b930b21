//! Whether a registered pool is really there before anything reads or writes under
//! it: an unmounted pool leaves an empty directory that must not pass for one.

use uuid::Uuid;

use super::error::{PoolProblem, PoolUnavailable};
use super::shared::Shared;
use crate::btrfs;
use crate::store::Pool;

/// `Ok` when `pool.path` is a mounted btrfs subvolume on the filesystem the pool
/// was added on. A pool added before ferry recorded filesystems gets its current
/// one recorded here, at its first successful check.
///
/// # Errors
///
/// [`PoolUnavailable`], for a temporary (busy) refusal.
pub(super) fn check(shared: &Shared, pool: &Pool) -> Result<(), Box<PoolUnavailable>> {
    let fail = |problem| {
        Box::new(PoolUnavailable {
            pool: pool.name.clone(),
            path: pool.path.clone(),
            me: shared.me.name.clone(),
            problem,
        })
    };
    match btrfs::is_subvolume(&pool.path) {
        Ok(true) => {}
        Ok(false) => return Err(fail(PoolProblem::NotMounted)),
        Err(e) => return Err(fail(PoolProblem::Unreadable(e))),
    }
    let found = match btrfs::filesystem_uuid(&pool.path) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(fail(PoolProblem::NotBtrfs)),
        Err(e) => return Err(fail(PoolProblem::Unreadable(e))),
    };
    match pool.fs_uuid {
        Some(added) if added == found => Ok(()),
        Some(added) => Err(fail(PoolProblem::OtherFilesystem { found, added })),
        None => {
            record(shared, pool, found);
            Ok(())
        }
    }
}

/// Whether `pool` is mounted on the filesystem it was added on (or one not
/// recorded yet), for readers outside a session that must not mistake an
/// unmounted pool's empty mount point for deleted replicas.
pub(super) fn is_there(pool: &Pool) -> bool {
    let on = btrfs::is_subvolume(&pool.path)
        .unwrap_or(false)
        .then(|| btrfs::filesystem_uuid(&pool.path).ok().flatten())
        .flatten();
    match (on, pool.fs_uuid) {
        (Some(found), Some(added)) => found == added,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn record(shared: &Shared, pool: &Pool, fs: Uuid) {
    match shared.db(|s| s.set_pool_fs_uuid(pool.id, fs)) {
        Ok(_) => tracing::info!(pool = %pool.name, path = %pool.path.display(), fs_uuid = %fs,
            "recorded the pool's btrfs filesystem"),
        Err(e) => tracing::warn!(pool = %pool.name, error = %e,
            "cannot record the pool's btrfs filesystem; will retry"),
    }
}
