//! Failing back: a share restored from a replica this appliance holds is
//! sent to the appliance the replica came from as an incremental, from the
//! snapshot that appliance still holds and the replica was received from
//! (feature `failback-bases`), instead of in full.

use std::path::PathBuf;

use tracing::info;
use uuid::Uuid;

use super::connect::Session;
use super::plan::{LocalSnapshot, Plan};
use super::Error;
use crate::btrfs;
use crate::replica_layout::{replica_dir, replica_state, ReplicaState};
use crate::store::{Replica, Store, Task};
use crate::wire::{Feature, Inventory};

/// A replica of this appliance that may be a failback's parent.
#[derive(Debug, Clone)]
struct Candidate {
    replica: Replica,
    path: PathBuf,
}

/// The verified, unchanged replicas of the line the share was restored
/// from: first the one it is a snapshot of (its btrfs parent_uuid), then
/// the rest of that line, newest first. None when the share is no copy of a
/// replica this appliance records from `target` (the appliance it sends to:
/// a copy sent elsewhere is no failback).
async fn candidates(store: &Store, task: &Task, target: Uuid) -> Result<Vec<Candidate>, Error> {
    let share = btrfs::show(&task.share).await?;
    let Some(origin) = share.parent_uuid else {
        return Ok(Vec::new());
    };
    for pool in store.pools()? {
        if !btrfs::same_filesystem(&task.share, &pool.path).unwrap_or(false) {
            continue;
        }
        for r in store.pool_replicas(&pool.name)? {
            if r.source_uuid != target {
                continue;
            }
            let dir = replica_dir(&pool.path, r.source_uuid, &r.share);
            match btrfs::show(&dir.join(&r.snapshot)).await {
                Ok(sub) if sub.uuid == origin => {}
                _ => continue,
            }
            let mut line = vec![r.clone()];
            line.extend(
                store
                    .replicas(&pool.name, r.source_uuid, &r.share)?
                    .into_iter()
                    .filter(|o| o.id != r.id),
            );
            let mut out = Vec::new();
            for replica in line {
                if let Ok(ReplicaState::Intact { .. }) = replica_state(&dir, &replica).await {
                    let path = dir.join(&replica.snapshot);
                    out.push(Candidate { replica, path });
                }
            }
            return Ok(out);
        }
    }
    Ok(Vec::new())
}

/// `plan` with a failback base as its parent when it has none and the
/// target offers one; with the sentence the run records either way (the
/// base and why it qualifies, or why the run sends in full).
///
/// # Errors
///
/// The store's, btrfs's reading the share, and the Inventory's.
pub(super) async fn consider(
    session: &mut Session,
    store: &Store,
    task: &Task,
    share: &str,
    mut plan: Plan,
) -> Result<(Plan, Option<String>), Error> {
    if plan.parent.is_some() || !session.client.features().has(Feature::FailbackBases) {
        return Ok((plan, None));
    }
    let found = candidates(store, task, session.client.peer().appliance).await?;
    if found.is_empty() {
        return Ok((plan, None));
    }
    let asked: Vec<Uuid> = found.iter().map(|c| c.replica.received_uuid).collect();
    let target = session.target.name.clone();
    let reply = session
        .client
        .inventory(Inventory {
            share: share.to_string(),
            pool: task.pool.clone(),
            bases: asked,
        })
        .await
        .map_err(|source| Error::Wire {
            appliance: target.clone(),
            source,
        })?;
    for c in &found {
        let Some(base) = reply
            .bases
            .iter()
            .find(|b| b.uuid == c.replica.received_uuid)
        else {
            continue;
        };
        let sub = btrfs::show(&c.path).await?;
        let r = &c.replica;
        let note = format!(
            "failback base {}: this share is a copy of the replica {} of {}'s share {} (pool {}), \
             which was received from {}; {target} offers it as {}",
            base.name, r.snapshot, r.source, r.share, r.pool, base.uuid, base.why
        );
        info!(task = %task.name, base = %base.name, "incremental failback: {note}");
        plan.parent = Some(LocalSnapshot {
            name: base.name.clone(),
            path: c.path.clone(),
            // What the target knows the base by: the uuid the replica was
            // received from, which Begin names and the stream's parent is.
            uuid: base.uuid,
            taken: r.received_at,
            created: r.grid_time(),
            otransid: sub.otransid,
            ctransid: sub.ctransid,
        });
        plan.failback = true;
        return Ok((plan, Some(note)));
    }
    let why: Vec<String> = reply
        .bases_withheld
        .iter()
        .map(|w| match w.name.as_str() {
            "" => w.reason.clone(),
            name => format!("{name} {}", w.reason),
        })
        .collect();
    let first = &found[0].replica;
    Ok((
        plan,
        Some(format!(
            "failback from the replica {} of {}'s share {}: {target} offers none of the snapshots \
             its line was received from as a base ({}); sending in full",
            first.snapshot,
            first.source,
            first.share,
            if why.is_empty() {
                "it gave no reason".to_string()
            } else {
                why.join("; ")
            }
        )),
    ))
}
