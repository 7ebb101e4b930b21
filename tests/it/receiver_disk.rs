//! The receiver and the disk under it: what it may delete, what it refuses to
//! trust (an unmounted or replaced pool), and retention order.

use crate::common;
use crate::common::daemon::{subvolumes, wait_for_log, FirstReplica, Pair};
use ferry::wire;

/// Pins: `delete_partials` deleted every subvolume without a `replicas` row, so
/// re-adding a pool under another name (its rows name the old pool) deleted
/// every verified replica at the next start, and again at the next Begin.
#[tokio::test]
async fn a_pool_re_added_under_another_name_keeps_its_replicas() {
    let pair = Pair::new();
    let (_s1, s2) = pair.two_replicas().await;

    let mount = pair.dst.mount.to_string_lossy().into_owned();
    pair.nas2.ok(&["pool", "remove", "backup"]);
    pair.nas2.ok(&["pool", "add", "backup2", &mount]);
    let d = pair.start(|_| {}).await;
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s1", "s2"]);
    wait_for_log(&["not recorded as a replica; left alone", "snapshot=\"s1\""]).await;

    // A receive into the renamed pool sweeps partials, not the old replicas.
    let mut c = pair.client(&d).await;
    let s3 = pair.snapshot("s3").await;
    c.replicate("photos", "backup2", &s3, None, 5)
        .await
        .expect("s3");
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s1", "s2", "s3"]);
    // Sending a name that is there but unrecorded is refused, and deletes nothing.
    match c.replicate("photos", "backup2", &s2, None, 5).await {
        Err(wire::Error::Refused { reason, .. }) => {
            assert!(
                reason.contains("not a replica this receiver recorded"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s1", "s2", "s3"]);
    drop(c);
    d.stop().await;
}

/// Pins: a replica whose row is gone (sqlite3 by hand, a lost state.db) was
/// deleted as a "partial" at the next start.
#[tokio::test]
async fn a_replica_whose_row_was_removed_keeps_its_subvolume() {
    let pair = Pair::new();
    let FirstReplica {
        daemon: d,
        client: c,
        s1,
    } = pair.first_replica().await;
    drop(c);
    d.stop().await;

    pair.sql("DELETE FROM replicas");
    let d = pair.start(|_| {}).await;
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s1"]);
    common::assert_same_tree(&s1.path, &pair.replica_dir().join("s1"));
    d.stop().await;
}

/// Pins: a receive that completes but fails verification leaves a read-only
/// subvolume with a received_uuid; it must still be deleted, and a failure must
/// delete only its own subvolume, not an unrecorded complete one beside it.
#[tokio::test]
async fn a_failed_verification_deletes_its_own_subvolume_and_nothing_else() {
    let pair = Pair::new();
    let FirstReplica {
        daemon: d,
        client: mut c,
        s1: _,
    } = pair.first_replica().await;
    pair.sql("DELETE FROM replicas");

    let s2 = pair.snapshot("s2").await;
    let zeros = "0".repeat(64);
    let e = c
        .replicate_with("photos", "backup", &s2, None, 5, |st| {
            st.blake3 = zeros.clone()
        })
        .await
        .expect_err("a wrong checksum must fail");
    assert!(
        matches!(&e, wire::Error::Failed { reason, permanent: false } if reason.starts_with("checksum mismatch")),
        "{e}"
    );
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s1"]);
    drop(c);
    d.stop().await;
}

/// Pins: with the pool unmounted, Inventory answered "nothing held" (every
/// replica failed `btrfs subvolume show`), and an empty inventory makes the
/// sender delete its snapshots. It must be a temporary (busy) refusal.
#[tokio::test]
async fn inventory_of_an_unmounted_pool_is_refused_as_busy() {
    let pair = Pair::new();
    let FirstReplica {
        daemon: d,
        client: mut c,
        s1: _,
    } = pair.first_replica().await;
    common::run("umount", &[pair.dst.mount.as_os_str()]);

    let mount = pair.dst.mount.display().to_string();
    match c.inventory("photos", "backup").await {
        Err(wire::Error::Refused { reason, busy, .. }) => {
            assert!(busy, "{reason}");
            assert!(
                reason.contains("pool backup") && reason.contains(&mount),
                "{reason}"
            );
        }
        other => panic!("expected a busy refusal, got {other:?}"),
    }
    let s2 = pair.snapshot("s2").await;
    match c.begin("photos", "backup", &s2, None, 5).await {
        Err(wire::Error::Refused { busy: true, .. }) => {}
        other => panic!("expected a busy refusal, got {other:?}"),
    }
    drop(c);
    d.stop().await;
}

/// Pins: the pool check was `is_btrfs(path)`, which an empty mount point on a
/// btrfs root filesystem passes, so a receive into an unmounted pool filled the
/// root filesystem; and nothing noticed another btrfs filesystem mounted there.
#[tokio::test]
async fn a_pool_replaced_by_a_plain_directory_or_another_filesystem_is_refused() {
    let pair = Pair::new();
    let other = common::TestPool::new();
    let plain = other.mount.join("plain");
    std::fs::create_dir(&plain).expect("plain dir");
    let FirstReplica {
        daemon: d,
        client: mut c,
        s1,
    } = pair.first_replica().await;
    let added = pair.nas2.store().pool("backup").expect("q").expect("row");
    let dst_fs = btrfs_fs(&pair.dst.mount);
    assert_eq!(
        added.fs_uuid,
        Some(dst_fs),
        "pool add records the filesystem"
    );

    let s2 = pair.snapshot("s2").await;
    for (path, why) in [
        (&plain, "is not a mounted btrfs subvolume"),
        (&other.mount, "another filesystem mounted there?"),
    ] {
        pair.sql(&format!(
            "UPDATE pools SET path = '{}' WHERE name = 'backup'",
            path.display()
        ));
        match c.inventory("photos", "backup").await {
            Err(wire::Error::Refused {
                reason, busy: true, ..
            }) => {
                assert!(reason.contains(why), "{reason}")
            }
            other => panic!("expected a busy refusal, got {other:?}"),
        }
        match c.begin("photos", "backup", &s2, Some(&s1), 5).await {
            Err(wire::Error::Refused {
                reason, busy: true, ..
            }) => {
                assert!(reason.contains(why), "{reason}")
            }
            other => panic!("expected a busy refusal, got {other:?}"),
        }
        assert!(
            !path.join(".ferry").exists(),
            "wrote into {}",
            path.display()
        );
    }

    // A pool from before fs_uuid existed gets it recorded at its first check.
    pair.sql(&format!(
        "UPDATE pools SET path = '{}', fs_uuid = NULL WHERE name = 'backup'",
        pair.dst.mount.display()
    ));
    let inv = c.inventory("photos", "backup").await.expect("inventory");
    assert_eq!(inv.len(), 1);
    let row = pair.nas2.store().pool("backup").expect("q").expect("row");
    assert_eq!(row.fs_uuid, Some(dst_fs));
    drop(c);
    d.stop().await;
}

fn btrfs_fs(path: &std::path::Path) -> uuid::Uuid {
    ferry::btrfs::filesystem_uuid(path)
        .expect("fs uuid")
        .expect("on btrfs")
}

/// Pins: retention ordered replicas by received_at, so one whose timestamp is in
/// the future (a clock that jumped back since) ranked newest, and `keep 1`
/// deleted the replica just committed, the sender's only common base.
#[tokio::test]
async fn a_replica_from_the_future_does_not_make_retention_delete_the_newest() {
    let pair = Pair::new();
    let FirstReplica {
        daemon: d,
        client: mut c,
        s1,
    } = pair.first_replica().await;
    pair.sql("UPDATE replicas SET received_at = '2999-01-01T00:00:00.000Z'");
    let s2 = pair.snapshot("s2").await;
    c.replicate("photos", "backup", &s2, Some(&s1), 1)
        .await
        .expect("s2");
    let s1_path = format!("path={}", pair.replica_dir().join("s1").display());
    wait_for_log(&["retention: deleted replica", &s1_path]).await;
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s2"]);
    assert_eq!(pair.latest(), "s2");
    drop(c);
    d.stop().await;
}
