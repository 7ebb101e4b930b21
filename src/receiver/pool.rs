//! Whether a registered pool is really there before anything reads or writes under
//! it: an unmounted pool leaves an empty directory that must not pass for one.

use uuid::Uuid;

use super::shared::Shared;
use crate::btrfs;
use crate::store::Pool;

/// `Ok` when `pool.path` is a mounted btrfs subvolume on the filesystem the pool
/// was added on; otherwise why not, for a temporary (busy) refusal: a pool that
/// is not mounted now may be soon. A pool added before ferry recorded filesystems
/// gets its current one recorded here, at its first successful check.
pub(super) fn check(shared: &Shared, pool: &Pool) -> Result<(), String> {
    let me = &shared.me.name;
    let fail = |problem: String| {
        format!(
            "pool {} at {} on {me} {problem}; try again later",
            pool.name,
            pool.path.display()
        )
    };
    match btrfs::is_subvolume(&pool.path) {
        Ok(true) => {}
        Ok(false) => {
            return Err(fail(
                "is not a mounted btrfs subvolume (is the pool unmounted?)".to_owned(),
            ))
        }
        Err(e) => return Err(fail(format!("cannot be checked ({e})"))),
    }
    let found = match btrfs::filesystem_uuid(&pool.path) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(fail("is not on btrfs".to_owned())),
        Err(e) => return Err(fail(format!("cannot be checked ({e})"))),
    };
    match pool.fs_uuid {
        Some(added) if added == found => Ok(()),
        Some(added) => Err(fail(format!(
            "is on btrfs filesystem {found}, but the pool was added on {added} \
             (another filesystem mounted there?)"
        ))),
        None => {
            record(shared, pool, found);
            Ok(())
        }
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
