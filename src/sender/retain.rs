//! A task's retention on both sides: the policies it asks for, the time zone
//! its periods count in, source pruning after a run, and `ferry task prune`.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use tracing::{info, warn};
use uuid::Uuid;

use super::connect;
use super::lock::TaskLock;
use super::plan::{self, LocalSnapshot};
use super::snapshot;
use super::Error;
use crate::retention::{self, Grid, Policy, Verdict, Zone};
use crate::store::{Store, Task};
use crate::wire::{Feature, Inventory, Keepalive, Prune};
use crate::{btrfs, schedule};

/// The time zone `task`'s retention periods are counted in: its
/// `--timezone`, else the system's (as for its cron schedule). The one place
/// that decides it, for both sides.
pub fn zone_of(task: &Task) -> Zone {
    task.timezone
        .as_deref()
        .and_then(retention::parse_zone)
        .unwrap_or_else(schedule::system_zone)
}

/// A stored grid; the CLI validated it, so a bad one (edited by hand) means
/// no grid, logged, rather than a failed run.
fn grid(task: &Task, text: &str) -> Grid {
    text.parse().unwrap_or_else(|e| {
        warn!(task = %task.name, error = %e, "ignoring a bad retention grid");
        Grid::default()
    })
}

/// What `task` keeps on this appliance.
pub fn source_policy(task: &Task) -> Policy {
    Policy {
        newest: task.keep_source,
        grid: grid(task, &task.preserve_source),
        cap: None,
    }
}

/// What `task` asks its target to keep. A target without `retention-grid`
/// keeps the newest `keep_target` only.
pub fn target_policy(task: &Task, grid_agreed: bool, cap: Option<u32>) -> Policy {
    Policy {
        newest: task.keep_target,
        grid: if grid_agreed {
            grid(task, &task.preserve_target)
        } else {
            Grid::default()
        },
        cap: cap.filter(|_| grid_agreed),
    }
}

/// The grid text to put in Begin or Prune: `None` when there is no grid.
pub fn preserve_text(task: &Task) -> Option<String> {
    let g = grid(task, &task.preserve_target);
    (!g.is_empty()).then(|| g.to_string())
}

/// Deletes `task`'s snapshots in `local` (oldest first) that its source
/// policy does not keep, never one in `bases`. Failures are logged: the next
/// run tries again. Returns the names deleted.
pub async fn prune_source(
    task: &Task,
    local: &[LocalSnapshot],
    bases: &HashSet<Uuid>,
) -> Vec<String> {
    let verdicts = plan::retain(
        local,
        &source_policy(task),
        bases,
        &zone_of(task),
        Utc::now(),
    );
    let mut deleted = Vec::new();
    for (old, verdict) in local.iter().zip(verdicts) {
        let Verdict::Delete(why) = verdict else {
            continue;
        };
        // Not waiting for the commit: no record depends on it, and on a busy
        // filesystem the wait held the run for half a minute.
        match btrfs::delete_lazily(&old.path).await {
            Ok(()) => {
                info!(task = %task.name, snapshot = %old.name, "retention deleted a snapshot ({why})");
                deleted.push(old.name.clone());
            }
            Err(e) => {
                warn!(task = %task.name, snapshot = %old.name, error = %e, "retention could not delete")
            }
        }
    }
    deleted
}

/// One snapshot or replica and what retention does with it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// Where it sits in the grid: btrfs otime (on the target, as the sender
    /// said, else when it arrived).
    pub created: DateTime<Utc>,
    pub verdict: Verdict,
}

/// What `ferry task prune` found, and did unless it was a dry run.
#[derive(Debug, Clone)]
pub struct PruneReport {
    /// This appliance's snapshots of the task, oldest first.
    pub source: Vec<Entry>,
    /// The target's replicas of the task's line, oldest first.
    pub target: Vec<Entry>,
    /// Whether the target applies grids (`retention-grid`); if not, it keeps
    /// the newest `keep_target` only, at its next receive.
    pub grid_on_target: bool,
    /// The target's cap on one line, when it said.
    pub target_cap: Option<u32>,
    /// Deleted on this appliance (empty in a dry run).
    pub deleted_source: Vec<String>,
    /// Deleted on the target: `None` in a dry run or when the target prunes
    /// only at its next receive.
    pub deleted_target: Option<Vec<String>>,
}

/// Decides `task`'s retention on both sides from this appliance's snapshots
/// and the target's inventory; unless `dry_run`, applies it now (the target
/// through a `prune` request where it supports one).
///
/// # Errors
///
/// [`Error::NoTask`]; [`Error::Busy`] when a run of the task holds its lock
/// (not for a dry run); the target's connection errors (the common base
/// comes from its inventory, so nothing is decided without it); btrfs and
/// store errors.
pub async fn prune_task(state_dir: &Path, name: &str, dry_run: bool) -> Result<PruneReport, Error> {
    let store = Store::open(state_dir)?;
    let task = store
        .task(name)?
        .ok_or_else(|| Error::NoTask(name.to_string()))?;
    let _lock = if dry_run {
        None
    } else {
        let lock = TaskLock::try_acquire(state_dir, &task.name).map_err(|source| Error::Lock {
            task: task.name.clone(),
            source,
        })?;
        Some(lock.ok_or_else(|| Error::Busy(task.name.clone()))?)
    };
    let share = task.share_name();
    let mut session = connect::session(state_dir, &store, &task, Keepalive::DEFAULT).await?;
    let wire_err = |source| Error::Wire {
        appliance: task.target.clone(),
        source,
    };
    let reply = session
        .client
        .inventory(Inventory {
            share: share.clone(),
            pool: task.pool.clone(),
            ..Default::default()
        })
        .await
        .map_err(wire_err)?;
    let grid_on_target = session.client.features().has(Feature::RetentionGrid);

    let local = snapshot::owned(&store, &task).await?.ours;
    let held: HashSet<Uuid> = reply.replicas.iter().map(|r| r.received_uuid).collect();
    let confirmed = store.confirmed_uuids(&task.name)?;
    // The next run's parent (newest held) and the newest ever confirmed.
    let bases: HashSet<Uuid> = [
        local.iter().rev().find(|s| held.contains(&s.uuid)),
        local.iter().rev().find(|s| confirmed.contains(&s.uuid)),
    ]
    .into_iter()
    .flatten()
    .map(|s| s.uuid)
    .collect();
    let zone = zone_of(&task);
    let now = Utc::now();
    let source: Vec<Entry> = plan::retain(&local, &source_policy(&task), &bases, &zone, now)
        .into_iter()
        .zip(&local)
        .map(|(verdict, s)| Entry {
            name: s.name.clone(),
            created: s.created,
            verdict,
        })
        .collect();

    // Inventory lists newest first; the newest always stays.
    let replicas: Vec<_> = reply.replicas.iter().rev().collect();
    let created: Vec<_> = replicas
        .iter()
        .map(|r| r.created.unwrap_or(r.received_at))
        .collect();
    let protected: Vec<bool> = (0..replicas.len())
        .map(|i| i + 1 == replicas.len())
        .collect();
    let policy = target_policy(&task, grid_on_target, reply.max_replicas);
    let target: Vec<Entry> = retention::decide(&created, &protected, &policy, &zone, now)
        .into_iter()
        .zip(&replicas)
        .map(|(verdict, r)| Entry {
            name: r.name.clone(),
            created: r.created.unwrap_or(r.received_at),
            verdict,
        })
        .collect();

    let mut report = PruneReport {
        source,
        target,
        grid_on_target,
        target_cap: reply.max_replicas,
        deleted_source: Vec::new(),
        deleted_target: None,
    };
    if !dry_run {
        report.deleted_source = prune_source(&task, &local, &bases).await;
        if grid_on_target {
            let pruned = session
                .client
                .prune(Prune {
                    share,
                    pool: task.pool.clone(),
                    keep: task.keep_target,
                    preserve: preserve_text(&task),
                    zone: Some(zone.name().to_string()),
                })
                .await
                .map_err(wire_err)?;
            report.deleted_target = Some(pruned.deleted);
        }
    }
    session.client.close().await;
    Ok(report)
}
