//! A task touches only the snapshots its own rows record, never another's
//! that merely look alike, and leaves everything else it finds alone.

use crate::common::assert_same_tree;
use crate::common::ferry::task_add;
use crate::common::pair::Pair;

/// Pins issue 10, fault 6: task `images_daily` of share `vm` and task `daily`
/// of share `vm_images`, sharing a snapshot directory, both name snapshots
/// `vm_images_daily_<time>`. Each deleted the other's as "never confirmed",
/// common base included, so every run was a full send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_whose_names_run_together_keep_each_others_snapshots() {
    let pair = Pair::new(&[]).await;
    let dir = pair.src.mount.join("shared-snapshots");
    let dir_s = dir.to_str().expect("utf8").to_string();
    for (task, share) in [("images_daily", "vm"), ("daily", "vm_images")] {
        let path = pair.src.subvolume(share);
        std::fs::write(path.join("disk"), task).expect("write");
        let share = path.to_str().expect("utf8");
        let extra = ["--snapshot-dir", &dir_s, "--keep-source", "2"];
        pair.nas1.ok(&task_add(task, share, "5m", &extra));
    }
    // Something else in the directory, named like theirs: nobody's to delete.
    let stranger = dir.join("vm_images_daily_20200101T000000Z");
    std::fs::create_dir_all(&dir).expect("mkdir");
    crate::common::run(
        "btrfs",
        &[
            "subvolume".as_ref(),
            "snapshot".as_ref(),
            "-r".as_ref(),
            pair.share.as_os_str(),
            stranger.as_os_str(),
        ],
    );
    for round in 0..3 {
        for (task, share) in [("images_daily", "vm"), ("daily", "vm_images")] {
            // A change each round: an unchanged share would be skipped.
            std::fs::write(
                pair.src.mount.join(share).join("disk"),
                format!("{task} {round}"),
            )
            .expect("write");
            let out = pair.nas1.run_async(&["task", "run", task]).await;
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{task}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let kind = if round == 0 {
                "(full)"
            } else {
                "(incremental from vm_images_daily_"
            };
            assert!(stdout.contains(kind), "round {round}, {task}: {stdout}");
        }
    }
    let names = crate::common::pair::names_in(&dir);
    assert_eq!(
        names.len(),
        2 + 2 + 1,
        "two each, and the stranger: {names:?}"
    );
    assert!(stranger.exists(), "a snapshot no task took was deleted");
    for share in ["vm", "vm_images"] {
        let latest =
            ferry::receiver::replica_dir(&pair.dst.mount, pair.peer.uuid, share).join("latest");
        assert_same_tree(&pair.src.mount.join(share), &latest);
    }
}

/// The receiver's side of the same rule: it deletes only the partials of its
/// own receives. A writable snapshot a user took of a replica, in the replica
/// directory, to restore from, survives receives and restarts (it was swept
/// as a "partial").
#[tokio::test]
async fn the_receiver_deletes_only_partials_of_its_own_receives() {
    let pair = crate::common::daemon::Pair::new();
    let (s1, _s2) = pair.two_replicas().await;
    let dir = pair.replica_dir();
    let restore = dir.join("restore-me");
    crate::common::run(
        "btrfs",
        &[
            "subvolume".as_ref(),
            "snapshot".as_ref(),
            dir.join(&s1.name).as_os_str(),
            restore.as_os_str(),
        ],
    );
    std::fs::write(restore.join("recovered"), b"mine").expect("write");
    // A restart sweeps partials: this is none of its receives.
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s3 = pair.snapshot("s3").await;
    c.replicate("photos", "backup", &s3, None, 5)
        .await
        .expect("a receive sweeps the directory first");
    assert!(
        restore.join("recovered").exists(),
        "the user's subvolume was deleted"
    );
    crate::common::daemon::wait_for_log(&["no receive of this receiver made", "restore-me"]).await;
    drop(c);
    d.stop().await;
}
