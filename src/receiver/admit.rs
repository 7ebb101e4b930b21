//! Whether a `Begin` may start a receive: names, pool, locks, slots, parent. A
//! refusal here writes nothing (no history row, no directory).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;

use super::disk::{self, LATEST};
use super::replica_dir;
use super::session::{busy, refused, Begin, Session};
use super::shared::ShareLock;
use crate::names;
use crate::store::Pool;
use crate::{btrfs, wire::Meta};

/// A receive that may start: it holds its share's lock and a receive slot.
pub(super) struct Admitted<'a> {
    pub pool: Pool,
    pub _lock: ShareLock<'a>,
    pub _slot: OwnedSemaphorePermit,
}

/// Every name from the wire, checked before any of them touches a path.
pub(super) fn check_names(b: &Begin) -> Result<(), String> {
    names::validate("share", &b.share).map_err(|e| e.to_string())?;
    names::validate_snapshot(&b.snapshot).map_err(|e| e.to_string())?;
    names::validate("pool", &b.pool).map_err(|e| e.to_string())?;
    if let Some(p) = &b.parent {
        names::validate_snapshot(&p.name).map_err(|e| format!("parent {e}"))?;
    }
    if b.snapshot == LATEST {
        return Err(format!(
            "snapshot name {LATEST:?} is reserved: it is the receiver's link to the newest replica"
        ));
    }
    Ok(())
}

fn db_error(e: crate::store::Error) -> Meta {
    refused(format!("receiver state database: {e}"))
}

/// A replica that cannot be inspected is not known to be gone: a temporary refusal.
pub(super) fn unreadable(pool: &Pool, snapshot: &str, e: &btrfs::Error) -> Meta {
    busy(format!(
        "cannot inspect replica {snapshot} in pool {} at {}: {e}; try again later",
        pool.name,
        pool.path.display()
    ))
}

/// Admits `b` or says why not, as the reply to send.
pub(super) async fn admit<'a, S>(s: &Session<'a, S>, b: &Begin) -> Result<Admitted<'a>, Meta>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shared = s.shared;
    check_names(b).map_err(refused)?;
    let pool = shared
        .db(|st| st.pool(&b.pool))
        .map_err(db_error)?
        .ok_or_else(|| refused(s.not_exposed(&b.pool)))?;
    // An unmounted pool's mount point is a plain directory on another
    // filesystem: receiving there would fill that filesystem.
    super::pool::check(shared, &pool).map_err(busy)?;
    let lock = shared.lock_share(s.source_uuid, &b.share).ok_or_else(|| {
        busy(format!(
            "a receive of share {} from {} is already running",
            b.share, s.peer.name
        ))
    })?;
    let slot = shared.receive_slot().ok_or_else(|| {
        busy(format!(
            "{} is already running {} receives, its limit; try again later",
            shared.me.name, shared.config.max_receives
        ))
    })?;
    let held = |name: &str| shared.db(|st| st.replica(&pool.name, s.source_uuid, &b.share, name));
    let dir = replica_dir(&pool.path, s.source_uuid, &b.share);
    if let Some(row) = held(&b.snapshot).map_err(db_error)? {
        if disk::is_intact(&dir, &row.snapshot, row.received_uuid)
            .await
            .map_err(|e| unreadable(&pool, &row.snapshot, &e))?
        {
            return Err(refused(format!(
                "snapshot {} of share {} from {} is already held in pool {}",
                b.snapshot, b.share, s.peer.name, pool.name
            )));
        }
        // Deleted by hand: Inventory no longer lists it, so the sender may
        // reuse its name; the stale row must not block that.
        shared
            .db(|st| st.remove_replica(row.id))
            .map_err(db_error)?;
        tracing::warn!(snapshot = %row.snapshot, share = %b.share, "forgot a replica that is gone from disk");
    }
    if let Some(parent) = &b.parent {
        let row = held(&parent.name).map_err(db_error)?;
        let usable = match row {
            Some(r) if r.received_uuid == parent.uuid => {
                disk::is_intact(&dir, &r.snapshot, r.received_uuid)
                    .await
                    .map_err(|e| unreadable(&pool, &r.snapshot, &e))?
            }
            _ => false,
        };
        if !usable {
            return Err(refused(format!(
                "parent {} ({}) is not held in pool {} for share {}; ask for the inventory and \
                 send from a parent it lists, or in full",
                parent.name, parent.uuid, pool.name, b.share
            )));
        }
    }
    Ok(Admitted {
        pool,
        _lock: lock,
        _slot: slot,
    })
}
