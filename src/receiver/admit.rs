//! Whether a `Begin` may start a receive: names, pool, locks, slots, parent. A
//! refusal here writes nothing (no history row, no directory).

use tokio::sync::OwnedSemaphorePermit;

use super::failback;
use super::link::Peer;
use super::park;
use super::pool;
use super::reply::{busy, busy_for, database, not_exposed, refused};
use super::shared::{Parked, ShareLock, Shared};
use crate::btrfs;
use crate::names::{self, NameError};
use crate::replica_layout::{self as layout, replica_dir, ReplicaState, LATEST};
use crate::store::Pool;
use crate::wire::{Begin, Feature, Meta};

/// A receive that may start: it holds its share's lock and a receive slot,
/// and, when it continues a parked receive, that receive.
pub(super) struct Admitted<'a> {
    pub pool: Pool,
    pub lock: ShareLock<'a>,
    pub _slot: OwnedSemaphorePermit,
    pub resumed: Option<Parked>,
}

/// A name from the wire that must not touch a path.
#[derive(Debug, thiserror::Error)]
pub(super) enum BadName {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("parent {0}")]
    Parent(NameError),
    #[error(
        "snapshot name {LATEST:?} is reserved: it is the receiver's link to the newest replica"
    )]
    Reserved,
}

/// Every name in `b`, checked before any of them touches a path.
///
/// # Errors
///
/// The first name that breaks a rule.
pub(super) fn check_names(b: &Begin) -> Result<(), BadName> {
    names::validate_share(&b.share)?;
    names::validate_snapshot(&b.snapshot)?;
    names::validate("pool", &b.pool)?;
    if let Some(p) = &b.parent {
        names::validate_snapshot(&p.name).map_err(BadName::Parent)?;
    }
    if b.snapshot == LATEST {
        return Err(BadName::Reserved);
    }
    Ok(())
}

/// A replica that cannot be inspected is not known to be gone: a temporary refusal.
pub(super) fn unreadable(pool: &Pool, snapshot: &str, e: &btrfs::Error) -> Meta {
    busy(format!(
        "cannot inspect replica {snapshot} in pool {} at {}: {e}; try again later",
        pool.name,
        pool.path.display()
    ))
}

/// Admits `b` from `peer`, or says why not, as the reply to send.
pub(super) async fn admit<'a>(
    shared: &'a Shared,
    peer: &Peer,
    b: &Begin,
) -> Result<Admitted<'a>, Meta> {
    check_names(b).map_err(refused)?;
    // A grid that does not parse is refused before anything is written, not
    // found out after the stream.
    super::retention::asked(
        shared,
        peer,
        b.keep,
        b.preserve.as_deref(),
        b.zone.as_deref(),
    )
    .map_err(refused)?;
    let pool = shared
        .db(|st| st.pool(&b.pool))
        .map_err(|e| database(&e))?
        .ok_or_else(|| not_exposed(&shared.me.name, &b.pool))?;
    // An unmounted pool's mount point is a plain directory on another
    // filesystem: receiving there would fill that filesystem.
    pool::check(shared, &pool).map_err(busy)?;
    let (lock, resumed) = match park::take(shared, peer, b).await {
        Some((parked, lock)) => (lock, Some(parked)),
        None => {
            let lock = shared
                .lock_share_for_receive(peer.uuid, &b.share, shared.config.slot_wait)
                .await
                .ok_or_else(|| {
                    busy(format!(
                        "a receive of share {} from {} is already running",
                        b.share,
                        peer.name()
                    ))
                })?;
            (lock, None)
        }
    };
    let wait = shared.config.slot_wait;
    let slot = shared.receive_slot(wait).await.ok_or_else(|| {
        busy_for(
            format!(
                "{} is already running {} receives, its limit, and none ended within {}; try again later",
                shared.me.name,
                shared.config.max_receives,
                humantime::format_duration(wait)
            ),
            wait,
        )
    })?;
    let held = |name: &str| shared.db(|st| st.replica(&pool.name, peer.uuid, &b.share, name));
    let dir = replica_dir(&pool.path, peer.uuid, &b.share);
    if let Some(row) = held(&b.snapshot).map_err(|e| database(&e))? {
        let state = layout::replica_state(&dir, &row)
            .await
            .map_err(|e| unreadable(&pool, &row.snapshot, &e))?;
        if state != ReplicaState::Gone {
            return Err(refused(format!(
                "snapshot {} of share {} from {} is already held in pool {}",
                b.snapshot,
                b.share,
                peer.name(),
                pool.name
            )));
        }
        // Deleted by hand: Inventory no longer lists it, so the sender may
        // reuse its name; the stale row must not block that.
        shared
            .db(|st| st.remove_replica(row.id))
            .map_err(|e| database(&e))?;
        tracing::warn!(snapshot = %row.snapshot, share = %b.share, "forgot a replica that is gone from disk");
    }
    if let Some(parent) = b.parent.as_ref().filter(|_| b.failback) {
        let qualified = match peer.features.has(Feature::FailbackBases) {
            true => failback::qualify(shared, &pool, parent.uuid)
                .await
                .map(|(own, _)| own.name)
                .map_err(|w| w.reason),
            false => Err("was named without the failback-bases feature".to_string()),
        };
        match qualified {
            Ok(name) if name == parent.name => {}
            Ok(name) => {
                return Err(refused(format!(
                    "failback base {} ({}) is named {name} here; ask for the inventory again",
                    parent.name, parent.uuid
                )))
            }
            Err(why) => {
                return Err(refused(format!(
                    "failback base {} ({}) {why}; ask for the inventory again, or send in full",
                    parent.name, parent.uuid
                )))
            }
        }
    } else if let Some(parent) = &b.parent {
        let row = held(&parent.name).map_err(|e| database(&e))?;
        let state = match &row {
            Some(r) if r.received_uuid == parent.uuid => layout::replica_state(&dir, r)
                .await
                .map_err(|e| unreadable(&pool, &r.snapshot, &e))?,
            _ => ReplicaState::Gone,
        };
        match state {
            ReplicaState::Intact { .. } => {}
            ReplicaState::Withheld(why) => {
                return Err(refused(format!(
                    "parent {} ({}) in pool {} for share {} {why}, so it is no parent any more; \
                     ask for the inventory and send from a parent it lists, or in full",
                    parent.name, parent.uuid, pool.name, b.share
                )))
            }
            ReplicaState::Gone => {
                return Err(refused(format!(
                    "parent {} ({}) is not held in pool {} for share {}; ask for the inventory and \
                     send from a parent it lists, or in full",
                    parent.name, parent.uuid, pool.name, b.share
                )))
            }
        }
    }
    Ok(Admitted {
        pool,
        lock,
        _slot: slot,
        resumed,
    })
}
