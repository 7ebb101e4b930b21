//! The Inventory request: the verified replicas of one share in one pool that are
//! still intact and unchanged on disk, which the sender may use as a parent. It
//! also brings the record up to date: replicas deleted by hand are forgotten,
//! and `latest` follows.

use super::admit::unreadable;
use super::failback;
use super::link::Peer;
use super::pool;
use super::reply::{busy, database, not_exposed, refused};
use super::shared::Shared;
use super::view::repair_line;
use crate::names;
use crate::replica_layout::{replica_dir, replica_state, ReplicaState};
use crate::wire::{Feature, Inventory, InventoryReply, Meta, Replica, Withheld};

/// The reply to `req` from `peer`: `inventory_reply`, or a refusal.
///
/// An empty answer makes the sender treat everything as unsent, so a pool that
/// is not there, or a replica that cannot be read, is "ask again" (busy), never
/// "none".
pub(super) async fn inventory(shared: &Shared, peer: &Peer, req: &Inventory) -> Meta {
    let Inventory { share, pool, bases } = req;
    if let Err(e) = names::validate_share(share).and(names::validate("pool", pool)) {
        return refused(e);
    }
    let pool_row = match shared.db(|s| s.pool(pool)) {
        Ok(Some(p)) => p,
        Ok(None) => return not_exposed(&shared.me.name, pool),
        Err(e) => return database(&e),
    };
    let rows = match shared.db(|s| s.replicas(pool, peer.uuid, share)) {
        Ok(rows) => rows,
        Err(e) => return database(&e),
    };
    if let Err(reason) = pool::check(shared, &pool_row) {
        tracing::warn!(peer = %peer.addr, appliance = %peer.name(), "inventory refused: {reason}");
        return busy(reason);
    }
    let dir = replica_dir(&pool_row.path, peer.uuid, share);
    // Said only to a peer that knows what to do with it.
    let grid = peer.features.has(Feature::RetentionGrid);
    let (mut replicas, mut withheld, mut gone) = (Vec::new(), Vec::new(), false);
    for r in rows.iter().cloned() {
        let state = match replica_state(&dir, &r).await {
            Ok(state) => state,
            Err(e) => return unreadable(&pool_row, &r.snapshot, &e),
        };
        match state {
            ReplicaState::Intact { record } => {
                if let Some(c) = record {
                    if let Err(e) = shared.db(|s| s.set_replica_ctransid(r.id, c)) {
                        return database(&e);
                    }
                }
                replicas.push(Replica {
                    name: r.snapshot,
                    received_uuid: r.received_uuid,
                    received_at: r.received_at,
                    created: r.created_at.filter(|_| grid),
                });
            }
            ReplicaState::Withheld(reason) => {
                tracing::warn!(pool, share, snapshot = %r.snapshot,
                    "replica withheld as a parent: it {reason}");
                withheld.push(Withheld {
                    name: r.snapshot,
                    received_uuid: r.received_uuid,
                    reason,
                });
            }
            ReplicaState::Gone => gone = true,
        }
    }
    if gone {
        // Someone deleted replicas by hand: forget them and point `latest`
        // at what is left, unless a receive of this line is running (it
        // points `latest` itself when it ends).
        match shared.lock_share(peer.uuid, share) {
            Some(_lock) => {
                if let Err(e) = repair_line(&dir, &rows, |id| shared.db(|s| s.remove_replica(id))) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot bring the replica record up to date");
                }
            }
            None => tracing::debug!(
                share,
                "a receive is running; forgetting gone replicas later"
            ),
        }
    }
    tracing::info!(peer = %peer.addr, appliance = %peer.name(), share, pool,
        replicas = replicas.len(), withheld = withheld.len(), "inventory");
    // Only a peer that can resume is told of a parked receive.
    // Asked only by a peer that agreed on the feature; answered only then.
    let (bases, bases_withheld) = if peer.features.has(Feature::FailbackBases) && !bases.is_empty()
    {
        failback::offer(shared, &pool_row, bases).await
    } else {
        (Vec::new(), Vec::new())
    };
    let parked = peer
        .features
        .has(Feature::Resume)
        .then(|| shared.parked_info(peer.uuid, share))
        .flatten();
    Meta::InventoryReply(InventoryReply {
        replicas,
        withheld,
        parked,
        max_replicas: grid.then_some(shared.config.max_replicas_per_line),
        bases,
        bases_withheld,
    })
}
