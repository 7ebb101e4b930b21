//! `ferry replica adopt` with the real binary: a receiver that lost its state
//! database takes back the replicas in its pools, so the next run is
//! incremental and retention prunes the adopted replicas again.

use std::os::fd::AsRawFd;

use crate::common::assert_same_tree;
use crate::common::pair::Pair;

nix::ioctl_write_ptr!(subvol_setflags, 0x94, 26, u64);

/// Sets or clears a subvolume's read-only flag the way btrfs-progs' `-f`
/// would not: keeping its received_uuid (as old btrfs-progs did).
fn set_read_only(path: &std::path::Path, read_only: bool) {
    let dir = std::fs::File::open(path).expect("open subvolume");
    let flags: u64 = if read_only { 1 << 1 } else { 0 };
    // SAFETY: the fd is open for the call; the ioctl reads one u64.
    unsafe { subvol_setflags(dir.as_raw_fd(), &flags) }.expect("BTRFS_IOC_SUBVOL_SETFLAGS");
}

/// Pins: after a lost state.db and a new `ferry init`, the next run was a
/// full send, and the replicas on disk were never pruned again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_receiver_database_costs_no_full_send_and_retention_applies_again() {
    // No grid: the newest three alone, so which replicas go is plain.
    let mut pair = Pair::new(&["--keep-target", "3", "--preserve-target", "none"]).await;
    pair.run_ok().await;
    std::fs::write(pair.share.join("b.txt"), b"beta").expect("write");
    pair.run_ok().await;
    let kept = pair.replicas();
    assert_eq!(kept.len(), 2);

    // Beside a running receiver, adopt is refused and changes nothing.
    let err = pair
        .nas2
        .refused(2, &["replica", "adopt", "--source", "nas1"]);
    assert!(err.contains("a ferry receiver (pid"), "{err}");

    let (meta, data) = pair.stop_receiver().await;
    // nas2 loses its state dir and starts over: a new identity, which nas1 trusts.
    std::fs::remove_dir_all(&pair.nas2.state).expect("lose nas2's state");
    pair.nas2.ok(&["init", "--name", "nas2"]);
    let new_fp = pair.nas2.fingerprint();
    pair.nas1
        .ok(&["appliance", "set", "nas2", "--fingerprint", &new_fp]);
    pair.nas2.ok(&[
        "appliance",
        "add",
        "nas1",
        "--address",
        "127.0.0.1",
        "--fingerprint",
        &pair.nas1.fingerprint(),
    ]);
    pair.nas2
        .ok(&["pool", "add", "backup", &pair.dst.mount.to_string_lossy()]);
    let dir = format!(".ferry/{}/photos", pair.peer.uuid);

    // Without --source, nas1 is not known by uuid yet: nothing is adopted.
    let before = pair.nas2.dump();
    let out = pair.nas2.ok(&["replica", "adopt"]);
    assert!(
        out.contains(&format!(
            "not adopted: {dir} in pool backup: no appliance is known by uuid {} yet",
            pair.peer.uuid
        )),
        "{out}"
    );
    let dry = pair
        .nas2
        .ok(&["replica", "adopt", "--source", "nas1", "--dry-run"]);
    assert!(
        dry.contains(&format!(
            "would adopt 2 replica(s) of share photos from nas1 in pool backup (newest received: {})",
            kept[1]
        )),
        "{dry}"
    );
    assert_eq!(pair.nas2.dump(), before, "neither changed anything");

    let out = pair.nas2.ok(&["replica", "adopt", "--source", "nas1"]);
    assert!(
        out.contains(&format!("bound appliance nas1 to uuid {}", pair.peer.uuid))
            && out.contains("adopted 2 replica(s) of share photos from nas1 in pool backup"),
        "{out}"
    );
    let again = pair.nas2.ok(&["replica", "adopt", "--source", "nas1"]);
    assert!(again.starts_with("nothing to adopt"), "{again}");
    let status = pair.nas2.json(&["status", "--json"]);
    assert_eq!(status["replicas"][0]["replicas"], 2, "{status}");
    assert_eq!(
        status["replicas"][0]["newest"],
        kept[1].as_str(),
        "{status}"
    );

    pair.restart_receiver(meta, data).await;
    std::fs::write(pair.share.join("c.txt"), b"gamma").expect("write");
    pair.run_ok().await;
    let row = &pair.send_rows()[0];
    assert_eq!(row["kind"], "incremental", "{row}");
    assert_eq!(row["parent"], kept[1].as_str(), "{row}");
    assert_same_tree(&pair.share, &pair.latest());

    // keep_target 3: two more runs and both adopted replicas are pruned.
    for round in 0..2 {
        std::fs::write(pair.share.join("more.txt"), format!("round {round}")).expect("write");
        pair.run_ok().await;
    }
    let now = pair.replicas();
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(
        !now.contains(&kept[0]) && !now.contains(&kept[1]),
        "adopted replicas are pruned like received ones: {now:?}"
    );
}

/// A replica that changed after it was received is no base: it is named and
/// left alone, and the next run sends from the newest one that did not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_edited_since_it_was_received_is_not_adopted() {
    let mut pair = Pair::new(&[]).await;
    pair.run_ok().await;
    std::fs::write(pair.share.join("b.txt"), b"beta").expect("write");
    pair.run_ok().await;
    let kept = pair.replicas();
    let (meta, data) = pair.stop_receiver().await;

    // Someone edits the newest replica behind btrfs-progs' back.
    let edited = pair.replica_dir().join(&kept[1]);
    set_read_only(&edited, false);
    std::fs::write(edited.join("edit.txt"), b"changed on the target").expect("edit");
    std::process::Command::new("btrfs")
        .args(["filesystem", "sync"])
        .arg(&pair.dst.mount)
        .status()
        .expect("sync");
    set_read_only(&edited, true);

    // The database is lost; `init --repair` keeps nas2's identity.
    std::fs::remove_file(pair.nas2.state.join("state.db")).expect("lose state.db");
    for side in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(pair.nas2.state.join(side));
    }
    pair.nas2.ok(&["init", "--repair"]);
    pair.nas2.ok(&[
        "appliance",
        "add",
        "nas1",
        "--address",
        "127.0.0.1",
        "--fingerprint",
        &pair.nas1.fingerprint(),
    ]);
    pair.nas2
        .ok(&["pool", "add", "backup", &pair.dst.mount.to_string_lossy()]);
    let out = pair.nas2.ok(&["replica", "adopt", "--source", "nas1"]);
    assert!(
        out.contains(&format!(
            "not adopted: .ferry/{}/photos/{} in pool backup: changed in transaction",
            pair.peer.uuid, kept[1]
        )) && out.contains("edited since it was received"),
        "{out}"
    );
    assert!(out.contains("adopted 1 replica(s)"), "{out}");

    pair.restart_receiver(meta, data).await;
    std::fs::write(pair.share.join("c.txt"), b"gamma").expect("write");
    pair.run_ok().await;
    let row = &pair.send_rows()[0];
    assert_eq!(row["kind"], "incremental", "{row}");
    assert_eq!(row["parent"], kept[0].as_str(), "{row}");
    assert_same_tree(&pair.share, &pair.latest());
    assert!(
        edited.join("edit.txt").exists(),
        "the edited replica is left alone"
    );
}
