//! The target's record follows its disk: a replica deleted by hand leaves
//! `ferry status`, and `latest` moves to what is left, at `status` and at the
//! next Inventory, not only at the next receive or restart.

use crate::common::content::populate;
use crate::common::daemon;
use crate::common::pair::Pair;

/// Pins issue 10, fault 8: after a replica was deleted by hand, `ferry
/// status` on the target still listed it as NEWEST, and `latest` dangled
/// until the next receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_forgets_replicas_deleted_by_hand_and_repairs_latest() {
    let pair = Pair::new(&[]).await;
    populate(&pair.share);
    pair.run_ok().await;
    std::fs::write(pair.share.join("more"), b"more").expect("write");
    pair.run_ok().await;
    let replicas = pair.replicas();
    ferry::btrfs::delete(&pair.replica_dir().join(&replicas[1]))
        .await
        .expect("delete by hand");

    let status = pair.nas2.json(&["status", "--json"]);
    let line = &status["replicas"][0];
    assert_eq!(line["newest"], replicas[0].as_str(), "{status}");
    assert_eq!(line["replicas"], 1);
    let latest = std::fs::read_link(pair.latest()).expect("latest");
    assert_eq!(latest.to_str(), Some(replicas[0].as_str()));

    ferry::btrfs::delete(&pair.replica_dir().join(&replicas[0]))
        .await
        .expect("delete by hand");
    let text = pair.nas2.ok(&["status"]);
    assert!(!text.contains(&replicas[0]), "{text}");
    let status = pair.nas2.json(&["status", "--json"]);
    assert_eq!(status["replicas"], serde_json::json!([]), "{status}");
    assert!(
        std::fs::symlink_metadata(pair.latest()).is_err(),
        "latest dangles"
    );
}

/// The same at Inventory, before any receive: what a sender asks about is
/// brought up to date first.
#[tokio::test]
async fn inventory_forgets_replicas_deleted_by_hand_and_repairs_latest() {
    let pair = daemon::Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    let s2 = pair.snapshot("s2").await;
    c.replicate("photos", "backup", &s1, None, 5)
        .await
        .expect("s1");
    c.replicate("photos", "backup", &s2, Some(&s1), 5)
        .await
        .expect("s2");
    assert_eq!(pair.latest(), "s2");
    ferry::btrfs::delete(&pair.replica_dir().join("s2"))
        .await
        .expect("delete by hand");

    let held = c.inventory("photos", "backup").await.expect("inventory");
    let names: Vec<&str> = held.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["s1"]);
    assert_eq!(pair.latest(), "s1");
    let rows = pair
        .nas2
        .store()
        .replicas("backup", pair.peer.uuid, "photos")
        .expect("rows");
    assert_eq!(rows.len(), 1, "the gone replica is forgotten");
    drop(c);
    d.stop().await;
}

/// An unmounted pool is not a pool whose replicas were all deleted: `status`
/// forgets nothing there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_forgets_nothing_in_a_pool_that_is_not_mounted() {
    let pair = Pair::new(&[]).await;
    populate(&pair.share);
    pair.run_ok().await;
    let before = replica_lines(&pair.nas2.json(&["status", "--json"]));
    crate::common::run("umount", &[pair.dst.mount.as_os_str()]);
    let during = replica_lines(&pair.nas2.json(&["status", "--json"]));
    assert_eq!(during, before);
    crate::common::run(
        "mount",
        &[
            "-o".as_ref(),
            "loop".as_ref(),
            pair.dst.image.as_os_str(),
            pair.dst.mount.as_os_str(),
        ],
    );
    assert_eq!(
        replica_lines(&pair.nas2.json(&["status", "--json"])),
        before
    );
}

/// `status --json`'s replica lines without `age_seconds`, which is relative to
/// the moment of the call (a loaded machine lets a second pass between calls).
fn replica_lines(status: &serde_json::Value) -> serde_json::Value {
    let mut lines = status["replicas"].clone();
    for line in lines.as_array_mut().into_iter().flatten() {
        let age = line
            .as_object_mut()
            .and_then(|l| l.remove("age_seconds"))
            .and_then(|a| a.as_i64());
        assert!(age.is_some_and(|a| a >= 0), "an age in seconds: {status}");
    }
    lines
}
