//! Whether a registered pool is really there before anything reads or writes under
//! it: an unmounted pool leaves an empty directory that must not pass for one.

use crate::btrfs;
use crate::store::Pool;

/// `Ok` when `pool.path` is a mounted btrfs subvolume; otherwise why not, for a
/// temporary (busy) refusal: a pool that is not mounted now may be soon.
pub(super) fn check(pool: &Pool, me: &str) -> Result<(), String> {
    let problem = match btrfs::is_subvolume(&pool.path) {
        Ok(true) => return Ok(()),
        Ok(false) => "is not a mounted btrfs subvolume (is the pool unmounted?)".to_owned(),
        Err(e) => format!("cannot be checked ({e})"),
    };
    Err(format!(
        "pool {} at {} on {me} {problem}; try again later",
        pool.name,
        pool.path.display()
    ))
}
