//! The `prune` request (feature `retention-grid`): a sender's retention applied
//! to one of its replica lines now, without a receive, under the share's lock.

use super::link::Peer;
use super::pool;
use super::reply::{busy, database, not_exposed, refused};
use super::retention::{asked, prune};
use super::shared::Shared;
use crate::names;
use crate::replica_layout::replica_dir;
use crate::wire::{Meta, Prune, Pruned};

/// The reply to `req` from `peer`: `pruned{deleted}`, or a refusal. A receive
/// of the share in progress is a busy refusal: it prunes when it commits.
pub(super) async fn prune_now(shared: &Shared, peer: &Peer, req: &Prune) -> Meta {
    if let Err(e) = names::validate("share", &req.share).and(names::validate("pool", &req.pool)) {
        return refused(e);
    }
    let asked = match asked(
        shared,
        peer,
        req.keep,
        req.preserve.as_deref(),
        req.zone.as_deref(),
    ) {
        Ok(a) => a,
        Err(reason) => return refused(reason),
    };
    let pool_row = match shared.db(|s| s.pool(&req.pool)) {
        Ok(Some(p)) => p,
        Ok(None) => return not_exposed(&shared.me.name, &req.pool),
        Err(e) => return database(&e),
    };
    if let Err(reason) = pool::check(shared, &pool_row) {
        return busy(reason);
    }
    let Some(_lock) = shared.lock_share(peer.uuid, &req.share) else {
        return busy(format!(
            "a receive of share {} from {} is running; it applies the retention when it commits",
            req.share,
            peer.name()
        ));
    };
    let held = match shared.db(|s| s.replicas(&pool_row.name, peer.uuid, &req.share)) {
        Ok(held) => held,
        Err(e) => return database(&e),
    };
    let Some(newest) = held.first().map(|r| r.id) else {
        return Meta::Pruned(Pruned { deleted: vec![] });
    };
    let dir = replica_dir(&pool_row.path, peer.uuid, &req.share);
    let deleted = prune(shared, &dir, &held, &asked, newest).await;
    tracing::info!(peer = %peer.addr, appliance = %peer.name(), share = %req.share,
        pool = %req.pool, deleted = deleted.len(), "prune");
    Meta::Pruned(Pruned { deleted })
}
