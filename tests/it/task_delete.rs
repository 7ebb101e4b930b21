//! The real binary: `task delete`, which keeps snapshots unless asked, purges
//! only the task's own, and mentions snapshots only where the task has some.

use std::process::Command;

use crate::cli_tasks::{add_photos, source, Source};
use ferry::store::NewSend;

/// Takes a read-only snapshot named as the task would name it.
fn snapshot(s: &Source, name: &str) -> std::path::PathBuf {
    let dir = s.pool.mount.join(".ferry-snapshots/photos");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let dest = dir.join(name);
    let status = Command::new("btrfs")
        .args(["subvolume", "snapshot", "-r", &s.share])
        .arg(&dest)
        .output()
        .expect("btrfs");
    assert!(status.status.success(), "{status:?}");
    dest
}

#[test]
fn task_delete_needs_yes_keeps_snapshots_and_history_unless_purged() {
    let s = source();
    add_photos(&s, &[]);
    let snap = snapshot(&s, "photos_photos_20261121T053756Z");
    record(&s, "photos_photos_20261121T053756Z", Some(uuid_of(&snap)));

    let err = s.node.refused(2, &["task", "delete", "photos"]);
    assert_eq!(
        err,
        "ferry: refusing to delete task photos without --yes; its snapshots are kept unless \
         you add --purge-snapshots"
    );
    let out = s.node.ok(&["task", "delete", "photos", "--yes"]);
    let dir = s.pool.mount.join(".ferry-snapshots/photos");
    assert_eq!(
        out.trim_end(),
        format!(
            "deleted task photos; its 1 snapshot stays in {}, history is kept",
            dir.display()
        )
    );
    assert!(snap.exists(), "a plain delete must keep snapshots");
    // History outlives the task and can still be asked for by name.
    let rows = s
        .node
        .json(&["history", "send", "--task", "photos", "--json"]);
    assert_eq!(rows.as_array().map(Vec::len), Some(1));

    // A new task of the same name owns nothing the old one took: ownership
    // is what a task's own rows record, never a name.
    add_photos(&s, &[]);
    let recorded = snapshot(&s, "photos_photos_20261121T060000Z");
    record(
        &s,
        "photos_photos_20261121T060000Z",
        Some(uuid_of(&recorded)),
    );
    // A row from before uuids were recorded names its snapshot only.
    let named = snapshot(&s, "photos_photos_20261121T070000Z");
    record(&s, "photos_photos_20261121T070000Z", None);
    let lookalike = snapshot(&s, "photos_photos_20261121T080000Z");
    let out = s
        .node
        .ok(&["task", "delete", "photos", "--yes", "--purge-snapshots"]);
    assert_eq!(
        out.trim_end(),
        "deleted task photos and its 2 snapshots; history is kept"
    );
    assert!(!recorded.exists() && !named.exists());
    assert!(
        snap.exists(),
        "the deleted task's snapshot was purged by its namesake"
    );
    assert!(lookalike.exists(), "a snapshot no row records was purged");
}

fn uuid_of(path: &std::path::Path) -> uuid::Uuid {
    let out = Command::new("btrfs")
        .args(["subvolume", "show"])
        .arg(path)
        .output()
        .expect("btrfs");
    ferry::btrfs::parse_show(path, &String::from_utf8_lossy(&out.stdout))
        .expect("parse")
        .uuid
}

/// Records a send row of the current task `photos` naming `name` (and its
/// uuid, unless the row is from before uuids were recorded).
fn record(s: &Source, name: &str, uuid: Option<uuid::Uuid>) {
    let store = s.node.store();
    let task = store.task("photos").expect("q").expect("task");
    let id = store
        .begin_send(&NewSend {
            task_id: Some(task.id),
            task: "photos",
            target: "nas2",
            share: "photos",
        })
        .expect("row");
    store.set_send_snapshot(id, name).expect("name");
    if let Some(uuid) = uuid {
        store.set_send_snapshot_uuid(id, uuid).expect("uuid");
    }
}

#[test]
fn task_delete_mentions_snapshots_only_when_the_task_has_some() {
    let s = source();
    add_photos(&s, &[]);
    // In the task's snapshot dir but recorded by no row: not the task's.
    let stranger = snapshot(&s, "photos_photos_20261121T053756Z");
    let err = s.node.refused(2, &["task", "delete", "photos"]);
    assert_eq!(
        err,
        "ferry: refusing to delete task photos without --yes; it has no snapshots here, and \
         its history is kept"
    );
    let out = s.node.ok(&["task", "delete", "photos", "--yes"]);
    assert_eq!(
        out.trim_end(),
        "deleted task photos (it had no snapshots); history is kept"
    );
    add_photos(&s, &[]);
    let out = s
        .node
        .ok(&["task", "delete", "photos", "--yes", "--purge-snapshots"]);
    assert_eq!(
        out.trim_end(),
        "deleted task photos (it had no snapshots); history is kept"
    );
    assert!(stranger.exists(), "a snapshot no row records was purged");
}
