//! A base whose contents changed after it was confirmed is never a parent, on
//! either side: the run falls back to an older untouched base, or sends in
//! full, and its row and the logs name the base it skipped and why.

use crate::common::assert_same_tree;
use crate::common::content::{incompressible, populate};
use crate::common::daemon::{self, wait_for_log};
use crate::common::pair::Pair;
use crate::common::subvol::edit_readonly;

fn rm(name: &'static str) -> impl FnOnce(&std::path::Path) {
    move |dir| std::fs::remove_file(dir.join(name)).expect("rm")
}

/// Pins issue 10, fault 3: a user freed space by deleting `big.iso` from the
/// share and from ferry's snapshots (`ro false`, `rm`, `ro true`); the next
/// incrementals succeeded, yet the replica kept `big.iso` forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_changed_on_the_source_are_skipped_and_named() {
    let pair = Pair::new(&[]).await;
    populate(&pair.share);
    incompressible(&pair.share.join("big.iso"), 4 << 20);
    pair.run_ok().await;
    std::fs::write(pair.share.join("more"), b"more").expect("write");
    pair.run_ok().await;

    std::fs::remove_file(pair.share.join("big.iso")).expect("rm");
    let dir = pair.src.mount.join(".ferry-snapshots/photos");
    let local = pair.local_snapshots();
    for name in &local {
        edit_readonly(&dir.join(name), rm("big.iso"));
    }
    // `task run` logs errors only unless FERRY_LOG asks for more (a daemon's
    // run logs at info).
    let run = pair
        .nas1
        .command(&["task", "run", "photos"])
        .env("FERRY_LOG", "warn")
        .output()
        .await
        .expect("run ferry");
    assert!(run.status.success(), "{run:?}");
    let (out, log) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(out.contains("(full)"), "no untouched base is left: {out}");
    assert!(
        log.contains(&format!(
            "base {} skipped: it changed on this appliance",
            local[0]
        )),
        "the sender's log names it: {log}"
    );
    assert!(
        out.contains(&format!(
            "warning: base {} skipped: it changed on this appliance after it was taken (ctransid",
            local[1]
        )),
        "{out}"
    );
    let rows = pair.send_rows();
    let warnings: Vec<&str> = rows[0]["warnings"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert_eq!(
        warnings.len(),
        2,
        "both bases named, newest first: {warnings:?}"
    );
    assert!(warnings[0].starts_with(&format!("base {} skipped", local[1])));
    assert!(warnings[1].starts_with(&format!("base {} skipped", local[0])));
    assert!(!pair.latest().join("big.iso").exists());
    assert_same_tree(&pair.share, &pair.latest());
}

/// The same on the target: a replica made writable the old way (the plain
/// ioctl, which keeps its received_uuid), edited and made read-only again is
/// withheld from Inventory, and the sender falls back to an older base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_changed_on_the_target_are_withheld_and_named() {
    let pair = Pair::new(&[]).await;
    populate(&pair.share);
    incompressible(&pair.share.join("big.iso"), 1 << 20);
    pair.run_ok().await;
    std::fs::write(pair.share.join("more"), b"more").expect("write");
    pair.run_ok().await;
    let replicas = pair.replicas();
    let dir = pair.replica_dir();
    edit_readonly(&dir.join(&replicas[1]), rm("big.iso"));

    std::fs::write(pair.share.join("after"), b"after").expect("write");
    let out = pair.run_ok().await;
    assert!(
        out.contains(&format!("(incremental from {})", replicas[0])),
        "the older, untouched base: {out}"
    );
    assert!(
        out.contains(&format!(
            "warning: base {} skipped: its replica on the target changed after it was received (ctransid",
            replicas[1]
        )),
        "{out}"
    );
    wait_for_log(&["replica withheld as a parent", &replicas[1]]).await;
    assert_same_tree(&pair.share, &pair.latest());
    // The changed replica is kept (only retention deletes a replica).
    assert!(dir.join(&replicas[1]).exists());
}

/// A Begin naming a changed replica as its parent is refused, not received.
#[tokio::test]
async fn a_begin_from_a_changed_replica_is_refused() {
    let pair = daemon::Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    c.replicate("photos", "backup", &s1, None, 5)
        .await
        .expect("s1");
    let replica = pair.replica_dir().join("s1");
    let untouched = c
        .inventory_reply("photos", "backup")
        .await
        .expect("inventory");
    assert_eq!(untouched.replicas.len(), 1);
    assert!(untouched.withheld.is_empty());

    edit_readonly(&replica, rm("a.txt"));
    let reply = c
        .inventory_reply("photos", "backup")
        .await
        .expect("inventory");
    assert!(reply.replicas.is_empty(), "{reply:?}");
    assert_eq!(reply.withheld.len(), 1);
    assert!(
        reply.withheld[0]
            .reason
            .starts_with("changed after it was received (ctransid"),
        "{:?}",
        reply.withheld[0]
    );
    let s2 = pair.snapshot("s2").await;
    let err = c
        .replicate("photos", "backup", &s2, Some(&s1), 5)
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("changed after it was received"), "{text}");
    assert!(!pair.replica_dir().join("s2").exists());
    drop(c);
    d.stop().await;
}
