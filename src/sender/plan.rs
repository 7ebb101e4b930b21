//! What a run sends and what retention deletes, decided from the task's local
//! snapshots and what the target reports holding. Pure functions, tested alone.

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::btrfs::Subvolume;
use crate::retention::{self, Policy, Verdict, Zone};
use crate::{names, wire};

/// One of this task's snapshots on the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSnapshot {
    pub name: String,
    pub path: PathBuf,
    pub uuid: Uuid,
    /// The time in its name.
    pub taken: DateTime<Utc>,
    /// When btrfs made it (otime), which places it in the retention grid;
    /// the name's time where btrfs did not say.
    pub created: DateTime<Utc>,
    /// Its `ctransid`: equal to the share's while the share is unchanged.
    pub ctransid: Option<u64>,
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
                created: s.created.unwrap_or(taken),
                ctransid: s.ctransid,
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

/// The snapshot the share still equals, when a run may skip: the plan's
/// parent (the newest snapshot the target holds, all newer ones being
/// unconfirmed leftovers) whose `ctransid` equals the share's, read after a
/// filesystem commit. `None` when either is unknown: then the run snapshots.
pub fn unchanged_since(plan: &Plan, share_ctransid: Option<u64>) -> Option<&LocalSnapshot> {
    let parent = plan.parent.as_ref()?;
    (parent.ctransid.is_some() && parent.ctransid == share_ctransid).then_some(parent)
}

/// Source retention: a verdict per snapshot of `local` (oldest first) under
/// `policy`, with every snapshot in `bases` (the common base with the target)
/// kept whatever the policy says.
pub fn retain(
    local: &[LocalSnapshot],
    policy: &Policy,
    bases: &HashSet<Uuid>,
    zone: &Zone,
    now: DateTime<Utc>,
) -> Vec<Verdict> {
    let created: Vec<_> = local.iter().map(|s| s.created).collect();
    let protected: Vec<bool> = local.iter().map(|s| bases.contains(&s.uuid)).collect();
    retention::decide(&created, &protected, policy, zone, now)
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
            created: taken,
            ctransid: Some(u64::from(minute)),
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
            ctransid: s.ctransid,
            created: Some(s.created),
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

    fn gone(local: &[LocalSnapshot], keep: u32, grid: &str, base: &[usize]) -> Vec<LocalSnapshot> {
        let policy = Policy {
            newest: keep,
            grid: grid.parse().expect("grid"),
            cap: None,
        };
        let bases = base.iter().map(|&i| local[i].uuid).collect();
        let now = local.last().map_or_else(Utc::now, |s| s.created);
        retain(local, &policy, &bases, &Zone::UTC, now)
            .iter()
            .zip(local)
            .filter(|(v, _)| !v.keeps())
            .map(|(_, s)| s.clone())
            .collect()
    }

    #[test]
    fn retention_keeps_the_newest_and_never_the_common_base() {
        let local: Vec<_> = (1..=5).map(snap).collect();
        assert_eq!(gone(&local, 2, "none", &[4]), local[..3].to_vec());
        // The common base is old (newer ones unconfirmed): it survives anyway.
        assert_eq!(
            gone(&local, 1, "none", &[1]),
            vec![local[0].clone(), local[2].clone(), local[3].clone()]
        );
        assert_eq!(
            gone(&local, 0, "none", &[]).len(),
            4,
            "keep is at least one"
        );
        assert!(gone(&local, 9, "none", &[]).is_empty());
        // All five fall in one hour: the hourly grid keeps the oldest of it.
        assert_eq!(gone(&local, 1, "1h", &[]), local[1..4].to_vec());
    }

    #[test]
    fn only_an_unchanged_held_parent_lets_a_run_skip() {
        let local: Vec<_> = (1..=3).map(snap).collect();
        let held = HashSet::from([local[2].uuid]);
        let p = plan(&local, &held, &held);
        assert_eq!(unchanged_since(&p, local[2].ctransid), Some(&local[2]));
        assert_eq!(unchanged_since(&p, Some(99)), None, "the share moved on");
        assert_eq!(unchanged_since(&p, None), None, "unknown is changed");
        // The target lost the newest replica: the parent is older, and the
        // share (equal to the newest) differs from it, so the run sends.
        let held = HashSet::from([local[1].uuid]);
        let p = plan(&local, &held, &held);
        assert_eq!(unchanged_since(&p, local[2].ctransid), None);
        // Nothing held: a full send, never a skip.
        let p = plan(&local, &HashSet::new(), &HashSet::new());
        assert_eq!(unchanged_since(&p, local[2].ctransid), None);
    }
}
