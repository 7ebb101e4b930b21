//! Failback bases (feature `failback-bases`): this appliance's own snapshots
//! as the parent of a line from a peer whose share was restored from a
//! replica of them. btrfs receive finds a parent only by (received) uuid and
//! only under its root, the replica directory; so the base is a read-only
//! snapshot of the own snapshot made there, marked as received from it.

use std::path::Path;

use uuid::Uuid;

use super::error::PrepareError;
use super::shared::Shared;
use crate::btrfs;
use crate::replica_layout::FAILBACK_PREFIX;
use crate::store::{FailbackBase, OwnSnapshot, Pool, Replica};
use crate::wire::{Base, Parent, Withheld};

/// Why this appliance's snapshot of uuid `uuid` may be the parent of a
/// receive into `pool`, or why not. The same checks as any base: recorded
/// as its own (by its send rows), read-only, unchanged since it was taken
/// (ctransid at most otransid), no nested subvolumes its replica would lack,
/// and on the pool's filesystem (a snapshot cannot cross filesystems).
pub(super) async fn qualify(
    shared: &Shared,
    pool: &Pool,
    uuid: Uuid,
) -> Result<(OwnSnapshot, String), Withheld> {
    let refuse = |name: &str, reason: String| Withheld {
        name: name.to_string(),
        received_uuid: uuid,
        reason,
    };
    let own = match shared.db(|s| s.own_snapshot(uuid)) {
        Ok(Some(own)) => own,
        Ok(None) => {
            return Err(refuse(
                "",
                format!(
                    "{} records no snapshot of uuid {uuid} as its own (deleted with its task, \
                     or never taken here)",
                    shared.me.name
                ),
            ))
        }
        Err(e) => return Err(refuse("", format!("state database: {e}"))),
    };
    let sub = match btrfs::show(&own.path).await {
        Ok(sub) => sub,
        Err(e) => {
            return Err(refuse(
                &own.name,
                format!("is gone or unreadable ({e}); it was deleted?"),
            ))
        }
    };
    let fault = if sub.uuid != uuid {
        Some(format!(
            "{} is another subvolume now (uuid {})",
            own.path.display(),
            sub.uuid
        ))
    } else if !sub.readonly {
        Some("is no longer read-only".to_string())
    } else if let Some(true) = sub.changed_since_created() {
        Some(format!(
            "changed after it was taken (ctransid {} > otransid {})",
            sub.ctransid.unwrap_or_default(),
            sub.otransid
        ))
    } else {
        None
    };
    if let Some(why) = fault {
        return Err(refuse(&own.name, why));
    }
    match shared.db(|s| s.snapshot_nested(own.task_id, uuid)) {
        Ok(nested) if nested.is_empty() => {}
        Ok(nested) => {
            return Err(refuse(
                &own.name,
                format!(
                    "held nested subvolumes ({}), which its replica lacks",
                    nested.join(", ")
                ),
            ))
        }
        Err(e) => return Err(refuse(&own.name, format!("state database: {e}"))),
    }
    match btrfs::same_filesystem(&own.path, &pool.path) {
        Ok(true) => {}
        Ok(false) => {
            return Err(refuse(
                &own.name,
                format!(
                    "is on another filesystem than pool {} ({}); add a pool on the share's \
                     filesystem and send there",
                    pool.name,
                    pool.path.display()
                ),
            ))
        }
        Err(e) => return Err(refuse(&own.name, e.to_string())),
    }
    let why = format!(
        "{}'s own snapshot {} of task {} (uuid {uuid}), read-only and unchanged since it was \
         taken, on pool {}'s filesystem",
        shared.me.name, own.name, own.task, pool.name
    );
    Ok((own, why))
}

/// Inventory's answer to `asked`: the bases offered, in the order asked,
/// and those refused with why.
pub(super) async fn offer(
    shared: &Shared,
    pool: &Pool,
    asked: &[Uuid],
) -> (Vec<Base>, Vec<Withheld>) {
    let (mut bases, mut refused) = (Vec::new(), Vec::new());
    for &uuid in asked {
        match qualify(shared, pool, uuid).await {
            Ok((own, why)) => bases.push(Base {
                name: own.name,
                uuid,
                why,
            }),
            Err(w) => {
                tracing::info!(pool = %pool.name, uuid = %uuid, "failback base not offered: {}", w.reason);
                refused.push(w);
            }
        }
    }
    (bases, refused)
}

/// Makes the base `parent` names (one of this appliance's own snapshots) in
/// the replica directory `dir` of (`source`, `share`), or finds it made by an
/// earlier attempt; records it as ferry's own. Only the holder of the
/// share's lock may call this.
///
/// # Errors
///
/// [`PrepareError::Base`] when the snapshot no longer qualifies or the copy
/// cannot be made; [`PrepareError::Store`].
pub(super) async fn make(
    shared: &Shared,
    pool: &Pool,
    dir: &Path,
    source: Uuid,
    share: &str,
    parent: &Parent,
) -> Result<(), PrepareError> {
    let err = |reason: String| PrepareError::Base {
        base: parent.name.clone(),
        reason,
    };
    let (own, why) = qualify(shared, pool, parent.uuid)
        .await
        .map_err(|w| err(w.reason))?;
    let base = format!("{FAILBACK_PREFIX}{}", parent.uuid.simple());
    for b in shared.db(|s| s.failback_bases(&pool.name, source, share))? {
        if b.origin_uuid != parent.uuid {
            continue;
        }
        let path = dir.join(&b.name);
        match btrfs::show(&path).await {
            Ok(sub) if sub.uuid == b.uuid && sub.readonly => {
                tracing::info!(base = %path.display(), origin = %own.name, "failback base ready: {why}");
                return Ok(());
            }
            // Gone, or replaced: forget it; a subvolume that is not ours is
            // passed by below, never deleted.
            _ => shared.db(|s| s.remove_failback_base(b.id))?,
        }
    }
    // A name taken by anything else (a user's subvolume, a base a lost
    // database no longer records) is left alone: the next free one is used.
    let Some(name) = std::iter::once(base.clone())
        .chain((2..100).map(|n| format!("{base}-{n}")))
        .find(|n| std::fs::symlink_metadata(dir.join(n)).is_err())
    else {
        return Err(err(format!(
            "every name {base}-N in {} is taken",
            dir.display()
        )));
    };
    if name != base {
        tracing::warn!(dir = %dir.display(), taken = %base, "a subvolume ferry does not record has the failback base's name; left alone");
    }
    let path = dir.join(&name);
    let copy = btrfs::snapshot_as_received(&own.path, &path)
        .await
        .map_err(|e| err(e.to_string()))?;
    shared.db(|s| {
        s.record_failback_base(&FailbackBase {
            id: 0,
            pool: pool.name.clone(),
            source_uuid: source,
            share: share.to_string(),
            name: name.clone(),
            uuid: copy.uuid,
            origin: own.name.clone(),
            origin_uuid: parent.uuid,
        })
    })?;
    tracing::info!(base = %path.display(), origin = %own.name, "made a failback base: {why}");
    Ok(())
}

/// Deletes the failback bases of the line `newest` belongs to, once it holds
/// that verified replica: the next receive's parent is a replica. Only a
/// subvolume that still has a recorded base's name and uuid is deleted.
pub(super) async fn retire(shared: &Shared, dir: &Path, newest: &Replica) {
    let bases =
        match shared.db(|s| s.failback_bases(&newest.pool, newest.source_uuid, &newest.share)) {
            Ok(bases) => bases,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list failback bases");
                return;
            }
        };
    for b in bases {
        let path = dir.join(&b.name);
        let deleted = match btrfs::show(&path).await {
            Ok(sub) if sub.uuid == b.uuid => btrfs::delete(&path).await.map(|()| true),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "a subvolume that is not the recorded failback base has its name; left alone");
                Ok(false)
            }
            Err(_) if std::fs::symlink_metadata(&path).is_err() => Ok(false),
            Err(e) => Err(e),
        };
        match deleted {
            Ok(deleted) => {
                if deleted {
                    tracing::info!(path = %path.display(), origin = %b.origin, "deleted a failback base: the line holds a verified replica now");
                }
                if let Err(e) = shared.db(|s| s.remove_failback_base(b.id)) {
                    tracing::warn!(error = %e, "cannot forget a failback base");
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a failback base; will retry after the next receive")
            }
        }
    }
}
