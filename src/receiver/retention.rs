//! Retention on the target: after each verified receive, and on a `prune`
//! request, the replicas of one line that the sender's retention (the newest
//! `keep`, and its grid where the session agreed on `retention-grid`) and this
//! receiver's cap do not keep are deleted, subvolume first, then row.

use std::io;
use std::path::Path;

use chrono::Utc;

use super::link::Peer;
use super::shared::Shared;
use crate::retention::{self, Grid, Policy, Zone};
use crate::store::Replica;
use crate::wire::Feature;
use crate::{btrfs, names};

/// The retention a sender asked for, with the zone its grid counts days in.
#[derive(Debug, Clone)]
pub(super) struct Asked {
    pub policy: Policy,
    pub zone: Zone,
}

/// Reads what `peer` asked to keep. The grid and zone count only where the
/// session agreed on `retention-grid` (a peer without it sends neither).
///
/// # Errors
///
/// A grid that does not parse, as the refusal's reason.
pub(super) fn asked(
    shared: &Shared,
    peer: &Peer,
    keep: u32,
    preserve: Option<&str>,
    zone: Option<&str>,
) -> Result<Asked, String> {
    let grid_agreed = peer.features.has(Feature::RetentionGrid);
    let grid: Grid = match preserve.filter(|_| grid_agreed) {
        Some(text) => text
            .parse()
            .map_err(|e| format!("retention grid from {}: {e}", peer.name()))?,
        None => Grid::default(),
    };
    let zone = match zone.filter(|_| grid_agreed) {
        // A zone this receiver's database lacks costs hours at a day's
        // edge, not a refused receive.
        Some(name) => retention::parse_zone(name).unwrap_or_else(|| {
            tracing::warn!(zone = name, appliance = %peer.name(), "unknown time zone; counting retention periods in UTC");
            Zone::UTC
        }),
        None => Zone::UTC,
    };
    Ok(Asked {
        policy: Policy {
            newest: keep.max(1),
            grid,
            cap: Some(shared.config.max_replicas_per_line),
        },
        zone,
    })
}

/// Applies `asked` to one line in `dir`. `held` is the line newest (highest
/// id) first; its newest and `protect` (the replica this receive committed)
/// always stay. Returns the names deleted, oldest first.
pub(super) async fn prune(
    shared: &Shared,
    dir: &Path,
    held: &[Replica],
    asked: &Asked,
    protect: i64,
) -> Vec<String> {
    let line: Vec<&Replica> = held.iter().rev().collect();
    let created: Vec<_> = line.iter().map(|r| r.grid_time()).collect();
    let newest = line.last().map(|r| r.id);
    let protected: Vec<bool> = line
        .iter()
        .map(|r| r.id == protect || Some(r.id) == newest)
        .collect();
    let verdicts = retention::decide(&created, &protected, &asked.policy, &asked.zone, Utc::now());
    let mut deleted = Vec::new();
    for (old, verdict) in line.iter().zip(verdicts) {
        let retention::Verdict::Delete(why) = verdict else {
            continue;
        };
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
            Ok(_) => {
                tracing::info!(pool = %old.pool, appliance = %old.source, share = %old.share,
                    snapshot = %old.snapshot, path = %path.display(), "retention: deleted replica ({why})");
                deleted.push(old.snapshot.clone());
            }
            Err(e) => {
                tracing::warn!(pool = %old.pool, share = %old.share, snapshot = %old.snapshot,
                error = %e, "retention: cannot delete replica; will retry after the next receive")
            }
        }
    }
    // The line holds a verified replica: bases made for a failback are done.
    if let Some(newest) = held.first() {
        super::failback::retire(shared, dir, newest).await;
    }
    deleted
}
