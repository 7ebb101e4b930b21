//! A share that carries a received_uuid (migrated in with `btrfs receive`,
//! then made writable the old way, which keeps it) replicates like any other.

use ferry::btrfs;

use crate::common::assert_same_tree;
use crate::common::content::{change, populate};
use crate::common::ferry::task_add;
use crate::common::pair::Pair;
use crate::common::subvol::set_readonly;

/// Pins issue 10, fault 4: every run of such a share streamed the whole share,
/// then failed `received_uuid is R, expected U` (permanent), at every regular
/// run. Read-only snapshots keep their source's received_uuid, and btrfs send
/// announces a subvolume under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_received_and_made_writable_the_old_way_replicates() {
    let pair = Pair::new(&[]).await;
    // The migration: a share on another appliance, sent and received here.
    let origin = pair.src.subvolume("origin");
    populate(&origin);
    let frozen = pair.src.mount.join("origin-frozen");
    btrfs::snapshot_readonly(&origin, &frozen)
        .await
        .expect("snapshot");
    let landing = pair.src.mount.join("migrated");
    std::fs::create_dir(&landing).expect("mkdir");
    let got = btrfs::receive(&landing, btrfs::send(&frozen, None).expect("send"))
        .await
        .expect("receive");
    // Made writable with the plain ioctl: the received_uuid stays.
    set_readonly(&got.path, false);
    let share = btrfs::show(&got.path).await.expect("show");
    assert!(!share.readonly);
    let received_uuid = share
        .received_uuid
        .expect("a received_uuid, as in the field");
    let share_s = got.path.to_str().expect("utf8");
    pair.nas1.ok(&task_add("migrated", share_s, "5m", &[]));

    let run = |args: &'static [&'static str]| pair.nas1.run_async(args);
    for round in 0..3 {
        if round == 1 {
            change(&got.path);
        }
        let out = run(&["task", "run", "migrated"]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kind = if round == 0 {
            "(full)"
        } else {
            "(incremental from "
        };
        assert!(stdout.contains(kind), "round {round}: {stdout}");
        let latest =
            ferry::receiver::replica_dir(&pair.dst.mount, pair.peer.uuid, &got.name).join("latest");
        assert_same_tree(&got.path, &latest);
        // The replica is this snapshot's, not the migrated share's origin.
        let replica = btrfs::show(&latest.canonicalize().expect("latest"))
            .await
            .expect("show");
        assert_ne!(replica.received_uuid, Some(received_uuid));
    }
    // The share itself is as it was: ferry changed nothing of it.
    assert_eq!(
        btrfs::show(&got.path).await.expect("show").received_uuid,
        Some(received_uuid)
    );
    let snapshots = landing.join(".ferry-snapshots").join(&got.name);
    for snap in btrfs::list(&snapshots).await.expect("list") {
        assert!(snap.readonly && snap.received_uuid.is_none(), "{snap:?}");
    }
}
