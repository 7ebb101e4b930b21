//! The Inventory request: the verified replicas of one share in one pool that are
//! still intact on disk, which the sender may use as a parent.

use super::admit::unreadable;
use super::layout::{is_intact, replica_dir};
use super::link::Peer;
use super::pool;
use super::reply::{busy, database, not_exposed, refused};
use super::shared::Shared;
use crate::names;
use crate::wire::{Feature, Inventory, InventoryReply, Meta, Replica};

/// The reply to `req` from `peer`: `inventory_reply`, or a refusal.
///
/// An empty answer makes the sender treat everything as unsent, so a pool that
/// is not there, or a replica that cannot be read, is "ask again" (busy), never
/// "none".
pub(super) async fn inventory(shared: &Shared, peer: &Peer, req: &Inventory) -> Meta {
    let Inventory { share, pool } = req;
    if let Err(e) = names::validate("share", share).and(names::validate("pool", pool)) {
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
    let mut replicas = Vec::with_capacity(rows.len());
    for r in rows {
        let intact = match is_intact(&dir, &r.snapshot, r.received_uuid).await {
            Ok(intact) => intact,
            Err(e) => return unreadable(&pool_row, &r.snapshot, &e),
        };
        if intact {
            replicas.push(Replica {
                name: r.snapshot,
                received_uuid: r.received_uuid,
                received_at: r.received_at,
                created: r.created_at.filter(|_| grid),
            });
        }
    }
    tracing::info!(peer = %peer.addr, appliance = %peer.name(), share, pool,
        replicas = replicas.len(), "inventory");
    // Only a peer that can resume is told of a parked receive.
    let parked = peer
        .features
        .has(Feature::Resume)
        .then(|| shared.parked_info(peer.uuid, share))
        .flatten();
    Meta::InventoryReply(InventoryReply {
        replicas,
        parked,
        max_replicas: grid.then_some(shared.config.max_replicas_per_line),
    })
}
