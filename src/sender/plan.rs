//! What a run sends and what retention deletes, decided from the task's own
//! snapshots (by record, ordered by creation transid) and what the target
//! reports holding. Pure functions, tested alone.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::btrfs::Subvolume;
use crate::retention::{self, Policy, Verdict, Zone};
use crate::store::SnapshotRecord;
use crate::{names, wire};

/// One of this task's snapshots on the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSnapshot {
    pub name: String,
    pub path: PathBuf,
    pub uuid: Uuid,
    /// The time in its name (else when btrfs made it): for people, never
    /// for order.
    pub taken: DateTime<Utc>,
    /// When btrfs made it (otime), which places it in the retention grid;
    /// the name's time where btrfs did not say.
    pub created: DateTime<Utc>,
    /// The transaction that created it: snapshots of one filesystem are
    /// ordered by it, whatever the clock said.
    pub otransid: u64,
    /// Its `ctransid`: equal to the share's while the share is unchanged,
    /// and at most `otransid` while nobody changed the snapshot itself.
    pub ctransid: Option<u64>,
}

impl LocalSnapshot {
    fn from_subvolume(s: Subvolume) -> LocalSnapshot {
        let named = names::snapshot_taken(&s.name);
        let created = s.created.or(named).unwrap_or(DateTime::UNIX_EPOCH);
        LocalSnapshot {
            taken: named.unwrap_or(created),
            created,
            name: s.name,
            path: s.path,
            uuid: s.uuid,
            otransid: s.otransid,
            ctransid: s.ctransid,
        }
    }

    /// `(ctransid, otransid)` when its contents changed after it was taken:
    /// someone made it writable and edited it. It is never a parent again.
    pub fn changed(&self) -> Option<(u64, u64)> {
        self.ctransid
            .filter(|&c| c > self.otransid)
            .map(|c| (c, self.otransid))
    }
}

/// A snapshot a row records by name only (taken before uuids were recorded,
/// or just before a crash), found on disk: from now on it is recorded by uuid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub row: i64,
    pub uuid: Uuid,
}

/// The subvolumes of a snapshot directory, split by ownership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// This task's read-only snapshots, oldest (lowest otransid) first.
    pub ours: Vec<LocalSnapshot>,
    /// Row records to complete with the uuid they name by name only.
    pub adopt: Vec<Adoption>,
    /// Everything else: another task's, a user's, a writable leftover. Left
    /// alone.
    pub foreign: Vec<String>,
}

/// Splits `subvolumes` (a snapshot directory's) into this task's own and the
/// rest. A snapshot is this task's when one of its rows (`records`) names its
/// uuid, or, for a row that recorded no uuid, its name (and no other task's
/// row names its uuid: `others`). Names alone never decide: two tasks whose
/// names run together (`vm` + `images_daily`, `vm_images` + `daily`) make
/// snapshots of the same name pattern.
pub fn owned(
    subvolumes: Vec<Subvolume>,
    records: &[SnapshotRecord],
    others: &HashSet<Uuid>,
) -> Owned {
    let by_uuid: HashSet<Uuid> = records.iter().filter_map(|r| r.uuid).collect();
    // The newest row naming it wins, should a name have been taken twice.
    let by_name: HashMap<&str, i64> = records
        .iter()
        .filter(|r| r.uuid.is_none())
        .map(|r| (r.name.as_str(), r.row))
        .collect();
    let mut out = Owned::default();
    for s in subvolumes {
        let adoptable = !others.contains(&s.uuid) && s.readonly;
        if by_uuid.contains(&s.uuid) {
            if s.readonly {
                out.ours.push(LocalSnapshot::from_subvolume(s));
            } else {
                out.foreign.push(s.name);
            }
        } else if let Some(&row) = by_name.get(s.name.as_str()).filter(|_| adoptable) {
            out.adopt.push(Adoption { row, uuid: s.uuid });
            out.ours.push(LocalSnapshot::from_subvolume(s));
        } else {
            out.foreign.push(s.name);
        }
    }
    out.ours.sort_by_key(|s| (s.otransid, s.uuid));
    out
}

/// A base the target holds that the run did not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub snapshot: String,
    pub reason: String,
}

/// The plan for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The newest untouched local snapshot the target holds untouched: the
    /// incremental's parent. `None`: a full send.
    pub parent: Option<LocalSnapshot>,
    /// Newer bases passed over because one side changed them after they
    /// were confirmed, newest first.
    pub skipped: Vec<Skipped>,
    /// Snapshots no target ever confirmed and the target does not hold
    /// (left by failed runs). Deleted before a new one is taken, so at most
    /// one unconfirmed snapshot per task exists at any time.
    pub unconfirmed: Vec<LocalSnapshot>,
    /// The parent is a failback base: one of the target's own snapshots,
    /// `parent` being this appliance's replica of it (`failback`).
    pub failback: bool,
}

/// Chooses the parent from what the receiver reports: `held`, the received
/// uuids it offers, and `changed_there`, those it holds but will not offer
/// because they changed after they were received (with why). A snapshot that
/// changed here after it was taken is no parent either: its contents are no
/// longer what the target received; nor one in `unfit` (with why: see
/// `share::orphaning`). A snapshot the target once confirmed
/// (`confirmed`, from this appliance's history) is never called unconfirmed,
/// even if this inventory misses it (a pool briefly unmounted, a replica
/// deleted by hand): only retention removes it.
pub fn plan(
    local: &[LocalSnapshot],
    held: &HashSet<Uuid>,
    changed_there: &HashMap<Uuid, String>,
    unfit: &HashMap<Uuid, String>,
    confirmed: &HashSet<Uuid>,
) -> Plan {
    let mut skipped = Vec::new();
    let mut parent = None;
    for s in local.iter().rev() {
        if let Some(why) = changed_there.get(&s.uuid) {
            skipped.push(Skipped {
                snapshot: s.name.clone(),
                reason: format!("its replica on the target {why}"),
            });
            continue;
        }
        if !held.contains(&s.uuid) {
            continue;
        }
        if let Some(why) = unfit.get(&s.uuid) {
            skipped.push(Skipped {
                snapshot: s.name.clone(),
                reason: why.clone(),
            });
            continue;
        }
        if let Some((ctransid, otransid)) = s.changed() {
            skipped.push(Skipped {
                snapshot: s.name.clone(),
                reason: format!(
                    "it changed on this appliance after it was taken (ctransid {ctransid} > otransid {otransid})"
                ),
            });
            continue;
        }
        parent = Some(s.clone());
        break;
    }
    let unconfirmed = local
        .iter()
        .filter(|s| !confirmed.contains(&s.uuid) && !held.contains(&s.uuid))
        .filter(|s| !changed_there.contains_key(&s.uuid))
        .cloned()
        .collect();
    Plan {
        parent,
        skipped,
        unconfirmed,
        failback: false,
    }
}

/// What [`plan`] decides from, but the local reasons: for planning again
/// with more of them.
pub struct Inputs<'a> {
    pub local: &'a [LocalSnapshot],
    pub held: &'a HashSet<Uuid>,
    pub changed_there: &'a HashMap<Uuid, String>,
    pub confirmed: &'a HashSet<Uuid>,
}

impl Inputs<'_> {
    /// [`plan`] with `unfit` as the local reasons.
    pub fn plan(&self, unfit: &HashMap<Uuid, String>) -> Plan {
        plan(
            self.local,
            self.held,
            self.changed_there,
            unfit,
            self.confirmed,
        )
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

/// A name for the next snapshot: `base`, or `base-2`, `base-3`, ... when a
/// name is taken (`taken`: what the snapshot directory holds, what the target
/// holds, what this task's rows name). A clock stepped back makes the same
/// name twice; reusing one the target holds would make the receive fail.
pub fn unique_name(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_owned();
    }
    (2u32..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken.contains(name))
        .unwrap_or_else(|| base.to_owned())
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
#[path = "plan_tests.rs"]
mod tests;
