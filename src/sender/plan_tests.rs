//! Unit tests of `plan`: ownership by record, order by creation transid,
//! parents that changed, unconfirmed snapshots, names, retention, skips.

use super::*;
use chrono::TimeZone;

/// Snapshot `n`, created in transaction `10 * n`, named as if taken at 05:0n
/// (names and clocks may say anything; the transid orders).
fn snap(n: u32) -> LocalSnapshot {
    let taken = Utc
        .with_ymd_and_hms(2026, 11, 21, 5, n, 0)
        .single()
        .expect("valid time");
    let name = names::snapshot_name("photos", "t", taken);
    LocalSnapshot {
        path: PathBuf::from("/snaps").join(&name),
        name,
        uuid: Uuid::from_u128(u128::from(n) + 1),
        taken,
        created: taken,
        otransid: u64::from(n) * 10,
        ctransid: Some(u64::from(n) * 10),
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
        created: Some(s.created),
        otransid: s.otransid,
        ctransid: s.ctransid,
        stransid: 0,
        rtransid: 0,
    }
}

fn record(row: i64, s: &LocalSnapshot, with_uuid: bool) -> SnapshotRecord {
    SnapshotRecord {
        row,
        name: s.name.clone(),
        uuid: with_uuid.then_some(s.uuid),
    }
}

#[test]
fn only_snapshots_this_tasks_rows_record_are_its_own_oldest_transid_first() {
    let (a, b, c) = (snap(2), snap(1), snap(3));
    // Another task's snapshot under a name this task's pattern also makes
    // (`vm` + `images_daily` and `vm_images` + `daily`).
    let lookalike = subvolume(&snap(4), true);
    let writable = subvolume(&c, false);
    let found = owned(
        vec![
            subvolume(&a, true),
            lookalike,
            writable,
            subvolume(&b, true),
        ],
        &[
            record(1, &b, true),
            record(2, &a, true),
            record(3, &c, true),
        ],
        &HashSet::new(),
    );
    assert_eq!(found.ours, vec![b, a]);
    assert!(found.adopt.is_empty());
    assert_eq!(found.foreign.len(), 2);
}

#[test]
fn a_snapshot_a_row_names_without_uuid_is_adopted_unless_another_task_records_it() {
    let (a, b) = (snap(1), snap(2));
    let found = owned(
        vec![subvolume(&a, true), subvolume(&b, true)],
        &[record(7, &a, false), record(8, &b, false)],
        &HashSet::from([b.uuid]),
    );
    assert_eq!(found.ours, vec![a.clone()]);
    assert_eq!(
        found.adopt,
        vec![Adoption {
            row: 7,
            uuid: a.uuid
        }]
    );
    assert_eq!(found.foreign, vec![b.name]);
}

#[test]
fn order_comes_from_the_creation_transid_not_the_name() {
    // The clock stepped back two hours before the third snapshot: its name
    // sorts first, its transid last.
    let (first, second, mut third) = (snap(8), snap(9), snap(6));
    third.otransid = 100;
    let found = owned(
        [&third, &first, &second]
            .into_iter()
            .map(|s| subvolume(s, true))
            .collect(),
        &[
            record(1, &first, true),
            record(2, &second, true),
            record(3, &third, true),
        ],
        &HashSet::new(),
    );
    let names: Vec<&str> = found.ours.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [&first.name, &second.name, &third.name]);
    let held = HashSet::from([first.uuid, second.uuid, third.uuid]);
    let p = plan(&found.ours, &held, &HashMap::new(), &HashMap::new(), &held);
    assert_eq!(p.parent.as_ref(), Some(&third));
}

#[test]
fn nothing_held_means_a_full_send() {
    let local = vec![snap(1), snap(2)];
    let p = plan(
        &local,
        &HashSet::new(),
        &HashMap::new(),
        &HashMap::new(),
        &HashSet::new(),
    );
    assert_eq!(p.parent, None);
    assert_eq!(p.unconfirmed, local);
}

#[test]
fn the_parent_is_the_newest_snapshot_the_target_holds() {
    let local = vec![snap(1), snap(2), snap(3), snap(4)];
    // The target lost snapshot 3 (deleted by hand) but holds 1 and 2.
    let held = HashSet::from([local[0].uuid, local[1].uuid]);
    let p = plan(&local, &held, &HashMap::new(), &HashMap::new(), &held);
    assert_eq!(p.parent.as_ref(), Some(&local[1]));
    assert_eq!(p.unconfirmed, local[2..].to_vec());
    assert!(p.skipped.is_empty());
    let held = HashSet::from([local[3].uuid]);
    let p = plan(&local, &held, &HashMap::new(), &HashMap::new(), &held);
    assert_eq!(p.parent.as_ref(), Some(&local[3]));
}

#[test]
fn a_base_changed_on_either_side_is_skipped_for_an_older_one_and_named() {
    let mut local = vec![snap(1), snap(2), snap(3)];
    // Changed here after it was taken: ro false, rm, ro true.
    local[2].ctransid = Some(45);
    let held: HashSet<Uuid> = local.iter().map(|s| s.uuid).collect();
    let p = plan(&local, &held, &HashMap::new(), &HashMap::new(), &held);
    assert_eq!(p.parent.as_ref(), Some(&local[1]));
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].snapshot, local[2].name);
    assert!(p.skipped[0].reason.contains("ctransid 45 > otransid 30"));
    assert!(p.unconfirmed.is_empty(), "held and confirmed: kept");

    // And the target changed its replica of snapshot 2: it does not offer it.
    let offered = HashSet::from([local[0].uuid, local[2].uuid]);
    let changed_there = HashMap::from([(local[1].uuid, "changed".to_string())]);
    let p = plan(&local, &offered, &changed_there, &HashMap::new(), &held);
    assert_eq!(p.parent.as_ref(), Some(&local[0]));
    let skipped: Vec<&str> = p.skipped.iter().map(|s| s.snapshot.as_str()).collect();
    assert_eq!(skipped, [&local[2].name, &local[1].name]);

    // Every base changed: a full send.
    let p = plan(
        &local[1..],
        &offered,
        &changed_there,
        &HashMap::new(),
        &held,
    );
    assert_eq!(p.parent, None);
}

#[test]
fn a_snapshot_once_confirmed_is_never_deleted_as_unconfirmed() {
    // Pins: an inventory that missed everything (target pool unmounted)
    // made the sender delete its confirmed snapshots and the common base.
    let local: Vec<_> = (1..=4).map(snap).collect();
    let confirmed = HashSet::from([local[0].uuid, local[1].uuid, local[2].uuid]);
    let p = plan(
        &local,
        &HashSet::new(),
        &HashMap::new(),
        &HashMap::new(),
        &confirmed,
    );
    assert_eq!(p.parent, None);
    assert_eq!(p.unconfirmed, vec![local[3].clone()]);
}

#[test]
fn every_unconfirmed_snapshot_goes_whatever_its_place() {
    // Pins issue 10, fault 5: with the clock behind, failed runs' snapshots
    // sorted older than the parent by name and were never deleted
    // (7 snapshots, 5 unconfirmed, with --keep-source 2).
    let local: Vec<_> = (1..=6).map(snap).collect();
    let held = HashSet::from([local[2].uuid]);
    let p = plan(&local, &held, &HashMap::new(), &HashMap::new(), &held);
    assert_eq!(p.parent.as_ref(), Some(&local[2]));
    let gone: Vec<u64> = p.unconfirmed.iter().map(|s| s.otransid).collect();
    assert_eq!(gone, [10, 20, 40, 50, 60]);
}

#[test]
fn a_name_taken_anywhere_is_never_reused() {
    let taken = HashSet::from(["a".to_string(), "a-2".to_string()]);
    assert_eq!(unique_name("b", &taken), "b");
    assert_eq!(unique_name("a", &taken), "a-3");
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
    let none = HashMap::new();
    let held = HashSet::from([local[2].uuid]);
    let p = plan(&local, &held, &none, &HashMap::new(), &held);
    assert_eq!(unchanged_since(&p, local[2].ctransid), Some(&local[2]));
    assert_eq!(unchanged_since(&p, Some(99)), None, "the share moved on");
    assert_eq!(unchanged_since(&p, None), None, "unknown is changed");
    // The target lost the newest replica: the parent is older, and the
    // share (equal to the newest) differs from it, so the run sends.
    let held = HashSet::from([local[1].uuid]);
    let p = plan(&local, &held, &none, &HashMap::new(), &held);
    assert_eq!(unchanged_since(&p, local[2].ctransid), None);
    // Nothing held: a full send, never a skip.
    let p = plan(
        &local,
        &HashSet::new(),
        &none,
        &HashMap::new(),
        &HashSet::new(),
    );
    assert_eq!(unchanged_since(&p, local[2].ctransid), None);
}

#[test]
fn a_base_unfit_here_is_skipped_with_its_reason() {
    let local: Vec<_> = (1..=3).map(snap).collect();
    let held: HashSet<Uuid> = local.iter().map(|s| s.uuid).collect();
    let unfit = HashMap::from([(local[2].uuid, "directory d is gone".to_string())]);
    let inputs = Inputs {
        local: &local,
        held: &held,
        changed_there: &HashMap::new(),
        confirmed: &held,
    };
    let p = inputs.plan(&unfit);
    assert_eq!(p.parent.as_ref(), Some(&local[1]));
    assert_eq!(
        p.skipped,
        vec![Skipped {
            snapshot: local[2].name.clone(),
            reason: "directory d is gone".into(),
        }]
    );
}
