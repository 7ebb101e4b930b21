//! Parked receives (feature `resume`): taking one up again for a `begin` that
//! asks to resume it, and discarding those nobody resumed within the window.

use std::time::Duration;

use tokio::time::timeout;

use super::link::Peer;
use super::shared::{Parked, ShareLock, Shared};
use crate::replica_layout::{delete_own, delete_partials};
use crate::store::Status;
use crate::wire::{Begin, Feature};

/// How long a discarded receive's btrfs receive gets to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// The parked receive `b` continues, with its share's lock; `None` when there
/// is none to continue. A parked receive of the same share that `b` does not
/// continue (another snapshot, or no resume asked) is discarded first: the
/// sender has moved on, and it holds the share's lock.
pub(super) async fn take<'a>(
    shared: &'a Shared,
    peer: &Peer,
    b: &Begin,
) -> Option<(Parked, ShareLock<'a>)> {
    let (parked, lock) = shared.unpark(peer.uuid, &b.share)?;
    let p = &parked.begin;
    let same = p.snapshot == b.snapshot
        && p.snapshot_uuid == b.snapshot_uuid
        && p.parent == b.parent
        && p.pool == b.pool;
    if b.resume && same && peer.features.has(Feature::Resume) {
        tracing::info!(appliance = %peer.name(), share = %b.share, snapshot = %b.snapshot,
            offset = parked.prefix.offset(), "resuming a parked receive");
        return Some((parked, lock));
    }
    let why = if same {
        "the sender asked to start it over"
    } else {
        "the sender began another snapshot"
    };
    discard(shared, parked, why).await;
    drop(lock);
    None
}

/// Ends a parked receive that will not be resumed: btrfs receive stops, its
/// partial subvolume is deleted, its row fails with `why`. The caller holds,
/// and then releases, its share's lock.
pub(super) async fn discard(shared: &Shared, parked: Parked, why: &str) {
    let Parked {
        source,
        begin,
        dir,
        receive,
        prefix,
        row,
        ..
    } = parked;
    let _ = timeout(EXIT_GRACE, receive.finish()).await;
    let after = shared.config.btrfs_timeout;
    let cleaned = timeout(after, async {
        delete_own(&dir, &[begin.snapshot.as_str()])
            .await
            .map_err(|e| e.to_string())?;
        // Without the record of what is held, a verified replica would look
        // like a partial: an unreadable record deletes nothing more.
        let held = shared
            .db(|s| s.replicas(&begin.pool, source, &begin.share))
            .map_err(|e| e.to_string())?;
        let attempted = shared
            .db(|s| s.received_names(&begin.pool, source, &begin.share))
            .map_err(|e| e.to_string())?;
        delete_partials(&dir, &held, &attempted)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let reason = format!(
        "connection lost after {} bytes; the receive was parked for a resume and discarded: {why}",
        prefix.offset()
    );
    let reason = match cleaned {
        Ok(Ok(_)) => reason,
        Ok(Err(e)) => format!("{reason}; its partial subvolume could not be deleted ({e}) and will be at the next start"),
        Err(_) => format!("{reason}; deleting its partial subvolume timed out; it will be at the next start"),
    };
    if let Err(e) = shared.db(|s| s.finish_receive(row, Status::Failed, Some(&reason), None)) {
        tracing::error!(row, error = %e, "cannot record a discarded parked receive");
    }
    tracing::warn!(share = %begin.share, snapshot = %begin.snapshot, "{reason}");
}

/// Discards the parked receives whose window has ended (all of them, at
/// shutdown: a parked receive does not survive the receiver), and those whose
/// pool was removed (`ferry pool remove --force`).
pub(super) async fn reap(shared: &Shared, all: bool) {
    for (source, share) in shared.parked_in_removed_pools() {
        if let Some((parked, lock)) = shared.unpark(source, &share) {
            let why = format!(
                "pool {} was removed from {} (`ferry pool remove --force`)",
                parked.begin.pool, shared.me.name
            );
            discard(shared, parked, &why).await;
            drop(lock);
        }
    }
    let now = tokio::time::Instant::now();
    for (source, share) in shared.parked_keys((!all).then_some(now)) {
        if let Some((parked, lock)) = shared.unpark(source, &share) {
            let why = if all {
                "the receiver is shutting down"
            } else {
                "no resume came within the resume window"
            };
            discard(shared, parked, why).await;
            drop(lock);
        }
    }
}
