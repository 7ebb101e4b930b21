//! Retention on the target: after each verified receive, the replicas of its line
//! beyond what the source asked to keep are deleted, subvolume first, then row.

use std::io;
use std::path::Path;

use super::shared::Shared;
use crate::store::Replica;
use crate::{btrfs, names};

/// Keeps the newest `keep` (at least one) replicas of one share in `dir` and
/// deletes the rest, subvolume first, then row. Never touches the newest, nor
/// `just`, the replica this receive committed.
pub(super) async fn prune(shared: &Shared, dir: &Path, held: &[Replica], keep: u32, just: i64) {
    let keep = usize::try_from(keep.max(1)).unwrap_or(usize::MAX);
    // `held` is newest (highest id) first.
    for old in held.iter().skip(keep).filter(|r| r.id != just) {
        let path = dir.join(&old.snapshot);
        if names::validate_snapshot(&old.snapshot).is_err() {
            continue;
        }
        let gone = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            _ => btrfs::delete(&path).await,
        };
        match gone.map_err(|e| e.to_string()).and_then(|()| {
            shared
                .db(|s| s.remove_replica(old.id))
                .map_err(|e| e.to_string())
        }) {
            Ok(_) => tracing::info!(pool = %old.pool, appliance = %old.source, share = %old.share,
                snapshot = %old.snapshot, path = %path.display(), "retention: deleted replica"),
            Err(e) => {
                tracing::warn!(pool = %old.pool, share = %old.share, snapshot = %old.snapshot,
                error = %e, "retention: cannot delete replica; will retry after the next receive")
            }
        }
    }
}
