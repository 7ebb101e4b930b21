//! What a run sends and what retention deletes, decided from the task's local
//! snapshots and what the target reports holding. Pure functions, tested alone.

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::btrfs::Subvolume;
use crate::{names, wire};

/// One of this task's snapshots on the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSnapshot {
    pub name: String,
    pub path: PathBuf,
    pub uuid: Uuid,
    pub taken: DateTime<Utc>,
}

/// The subvolumes of a snapshot directory that belong to this task, oldest first.
pub fn task_snapshots(subvolumes: Vec<Subvolume>, share: &str, task: &str) -> Vec<LocalSnapshot> {
    let mut ours: Vec<LocalSnapshot> = subvolumes
        .into_iter()
        .filter(|s| s.readonly)
        .filter_map(|s| {
            let taken = names::snapshot_time(share, task, &s.name)?;
            Some(LocalSnapshot {
                name: s.name,
                path: s.path,
                uuid: s.uuid,
                taken,
            })
        })
        .collect();
    ours.sort_by(|a, b| (a.taken, &a.name).cmp(&(b.taken, &b.name)));
    ours
}

/// The plan for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The newest local snapshot the target holds: the incremental's parent.
    /// `None`: a full send.
    pub parent: Option<LocalSnapshot>,
    /// Snapshots newer than the parent that no target ever confirmed (left by
    /// failed runs). Deleted before a new one is taken, so at most one
    /// unconfirmed snapshot per task exists at any time.
    pub unconfirmed: Vec<LocalSnapshot>,
}

/// Chooses the parent from what the receiver reports (`held`: the received
/// uuids it holds), never from local memory alone. A snapshot the target once
/// confirmed (`confirmed`, from this appliance's history) is never called
/// unconfirmed, even if this inventory misses it (a pool briefly unmounted, a
/// replica deleted by hand): only retention removes it.
pub fn plan(local: &[LocalSnapshot], held: &HashSet<Uuid>, confirmed: &HashSet<Uuid>) -> Plan {
    let parent_index = local.iter().rposition(|s| held.contains(&s.uuid));
    let newer = parent_index.map_or(0, |i| i + 1);
    Plan {
        parent: parent_index.map(|i| local[i].clone()),
        unconfirmed: local[newer..]
            .iter()
            .filter(|s| !confirmed.contains(&s.uuid))
            .cloned()
            .collect(),
    }
}

/// The local snapshot a parked receive on the target continues, if this run
/// may resume it: one of this plan's unconfirmed snapshots, begun from the
/// parent this plan chose (so the regenerated stream is the same stream).
pub fn parked(plan: &Plan, parked: &wire::Parked) -> Option<LocalSnapshot> {
    let same_parent = match (&plan.parent, &parked.parent) {
        (None, None) => true,
        (Some(ours), Some(theirs)) => ours.uuid == theirs.uuid && ours.name == theirs.name,
        _ => false,
    };
    plan.unconfirmed
        .iter()
        .find(|s| s.uuid == parked.snapshot_uuid && s.name == parked.snapshot)
        .filter(|_| same_parent)
        .cloned()
}

/// Which snapshots retention deletes: all but the newest `keep`, and never
/// `common_base` (the newest snapshot the target confirmed), whatever `keep` says.
pub fn prune(
    local: &[LocalSnapshot],
    keep: usize,
    common_base: Option<Uuid>,
) -> Vec<LocalSnapshot> {
    let cut = local.len().saturating_sub(keep.max(1));
    local[..cut]
        .iter()
        .filter(|s| Some(s.uuid) != common_base)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn snap(minute: u32) -> LocalSnapshot {
        let taken = Utc
            .with_ymd_and_hms(2026, 11, 21, 5, minute, 0)
            .single()
            .expect("valid time");
        let name = names::snapshot_name("photos", "t", taken);
        LocalSnapshot {
            path: PathBuf::from("/snaps").join(&name),
            name,
            uuid: Uuid::from_u128(u128::from(minute) + 1),
            taken,
        }
    }

    fn subvolume(s: &LocalSnapshot, readonly: bool) -> Subvolume {
        Subvolume {
            path: s.path.clone(),
            name: s.name.clone(),
            uuid: s.uuid,
            parent_uuid: None,
            received_uuid: None,
            readonly,
            generation: 1,
            created: None,
        }
    }

    #[test]
    fn only_this_tasks_read_only_snapshots_count_oldest_first() {
        let (a, b) = (snap(2), snap(1));
        let mut foreign = subvolume(&snap(3), true);
        foreign.name = "photos_other_20261121T050300Z".into();
        let writable = subvolume(&snap(4), false);
        let found = task_snapshots(
            vec![subvolume(&a, true), foreign, writable, subvolume(&b, true)],
            "photos",
            "t",
        );
        assert_eq!(found, vec![b, a]);
    }

    #[test]
    fn nothing_held_means_a_full_send() {
        let local = vec![snap(1), snap(2)];
        let p = plan(&local, &HashSet::new(), &HashSet::new());
        assert_eq!(p.parent, None);
        assert_eq!(p.unconfirmed, local);
    }

    #[test]
    fn the_parent_is_the_newest_snapshot_the_target_holds() {
        let local = vec![snap(1), snap(2), snap(3), snap(4)];
        // The target lost snapshot 3 (deleted by hand) but holds 1 and 2.
        let held = HashSet::from([local[0].uuid, local[1].uuid]);
        let p = plan(&local, &held, &held);
        assert_eq!(p.parent.as_ref(), Some(&local[1]));
        assert_eq!(p.unconfirmed, local[2..].to_vec());
        let held = HashSet::from([local[3].uuid]);
        let p = plan(&local, &held, &held);
        assert_eq!(p.parent.as_ref(), Some(&local[3]));
        assert!(p.unconfirmed.is_empty());
    }

    #[test]
    fn a_snapshot_once_confirmed_is_never_deleted_as_unconfirmed() {
        // Pins: an inventory that missed everything (target pool unmounted)
        // made the sender delete its confirmed snapshots and the common base.
        let local: Vec<_> = (1..=4).map(snap).collect();
        let confirmed = HashSet::from([local[0].uuid, local[1].uuid, local[2].uuid]);
        let p = plan(&local, &HashSet::new(), &confirmed);
        assert_eq!(p.parent, None);
        assert_eq!(p.unconfirmed, vec![local[3].clone()]);
    }

    #[test]
    fn retention_keeps_the_newest_and_never_the_common_base() {
        let local: Vec<_> = (1..=5).map(snap).collect();
        let gone = prune(&local, 2, Some(local[4].uuid));
        assert_eq!(gone, local[..3].to_vec());
        // The common base is old (newer ones unconfirmed): it survives anyway.
        let gone = prune(&local, 1, Some(local[1].uuid));
        assert_eq!(
            gone,
            vec![local[0].clone(), local[2].clone(), local[3].clone()]
        );
        assert!(prune(&local, 0, None).len() == 4, "keep is at least one");
        assert!(prune(&local, 9, None).is_empty());
    }
}
