//! The btrfs layer against real loop-backed pools: send/receive fidelity, failures that
//! must surface with btrfs's own words, subvolume facts, and the harness's cleanup.

use crate::common;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::content::{change, populate, write};
use crate::common::{assert_same_tree, loop_devices_under, mount_points, TestPool};
use ferry::btrfs::{self, Error};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn full_then_incremental_send_receive_is_identical() {
    let (src, dst) = (TestPool::new(), TestPool::new());
    let share = src.subvolume("share");
    populate(&share);
    let snaps = src.mount.join("snaps");
    let recv = dst.mount.join("recv");
    std::fs::create_dir(&snaps).unwrap();
    std::fs::create_dir(&recv).unwrap();

    let s1 = btrfs::snapshot_readonly(&share, &snaps.join("s1"))
        .await
        .unwrap();
    assert!(s1.readonly);
    assert_eq!(
        s1.parent_uuid,
        Some(btrfs::show(&share).await.unwrap().uuid)
    );
    assert!(common::tree_digest(&s1.path)
        .0
        .values()
        .any(|e| matches!(e.kind, common::Kind::File { sparse: true, .. })));

    let got = btrfs::receive(&recv, btrfs::send(&s1.path, None).unwrap())
        .await
        .unwrap();
    assert_eq!(got.name, "s1");
    assert_eq!(got.path, recv.join("s1"));
    let r1 = btrfs::show(&got.path).await.unwrap();
    assert!(r1.readonly);
    assert_eq!(r1.received_uuid, Some(s1.uuid));
    assert_same_tree(&s1.path, &r1.path);

    change(&share);
    let s2 = btrfs::snapshot_readonly(&share, &snaps.join("s2"))
        .await
        .unwrap();
    let stream = btrfs::send(&s2.path, Some(&s1.path)).unwrap();
    // The explicit form: write into a Receive, then finish it.
    let mut rx = btrfs::Receive::start(&recv).unwrap();
    let mut stream = stream;
    tokio::io::copy(&mut stream, &mut rx).await.unwrap();
    stream.finish().await.unwrap();
    let got = rx.finish().await.unwrap();
    assert_eq!(got.name, "s2");
    let r2 = btrfs::show(&got.path).await.unwrap();
    assert!(r2.readonly);
    assert_eq!(r2.received_uuid, Some(s2.uuid));
    assert_eq!(
        r2.parent_uuid,
        Some(r1.uuid),
        "received as a snapshot of r1"
    );
    assert_same_tree(&s2.path, &r2.path);
    assert_same_tree(&s1.path, &r1.path);
}

fn btrfs_error(e: &std::io::Error) -> &Error {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
        .unwrap_or_else(|| panic!("not a btrfs::Error inside: {e:?}"))
}

#[tokio::test]
async fn send_with_a_bad_parent_fails_with_btrfs_stderr_never_a_clean_eof() {
    let pool = TestPool::new();
    let share = pool.subvolume("share");
    write(&share.join("f"), b"data");
    let s1 = btrfs::snapshot_readonly(&share, &pool.mount.join("s1"))
        .await
        .unwrap();
    let gone = btrfs::snapshot_readonly(&share, &pool.mount.join("gone"))
        .await
        .unwrap();
    btrfs::delete(&gone.path).await.unwrap();
    let plain = pool.mount.join("plain");
    std::fs::create_dir(&plain).unwrap();

    // A writable subvolume, a plain directory, a deleted snapshot.
    for parent in [&share, &plain, &gone.path] {
        let mut stream = btrfs::send(&s1.path, Some(parent)).unwrap();
        let err = tokio::io::copy(&mut stream, &mut tokio::io::sink())
            .await
            .expect_err("a failed send must not end cleanly");
        let err = btrfs_error(&err);
        assert!(err.command().unwrap().contains("send"), "{err}");
        assert!(
            !err.stderr().unwrap_or("").is_empty(),
            "no stderr in: {err}"
        );
        assert!(
            err.to_string().contains(&parent.display().to_string()),
            "{err}"
        );
    }

    // Piped straight into a receive, the send's error is what comes back.
    let dest = pool.mount.join("recv");
    std::fs::create_dir(&dest).unwrap();
    let err = btrfs::receive(&dest, btrfs::send(&s1.path, Some(&plain)).unwrap())
        .await
        .unwrap_err();
    assert!(err.command().unwrap().starts_with("btrfs send"), "{err}");
    assert!(!err.stderr().unwrap().is_empty(), "{err}");
}

#[tokio::test]
async fn receive_of_garbage_or_truncated_stream_fails_with_btrfs_stderr() {
    let pool = TestPool::new();
    let share = pool.subvolume("share");
    write(&share.join("f"), &vec![1u8; 200_000]);
    let s1 = btrfs::snapshot_readonly(&share, &pool.mount.join("s1"))
        .await
        .unwrap();
    let dest = pool.mount.join("recv");
    std::fs::create_dir(&dest).unwrap();

    let err = btrfs::receive(&dest, &b"this is not a btrfs send stream"[..])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    assert!(err.command().unwrap().starts_with("btrfs receive"), "{err}");
    assert!(!err.stderr().unwrap().is_empty(), "{err}");

    let mut full = Vec::new();
    let mut stream = btrfs::send(&s1.path, None).unwrap();
    tokio::io::copy(&mut stream, &mut full).await.unwrap();
    for cut in [full.len() / 2, full.len() - 1] {
        let err = btrfs::receive(&dest, &full[..cut]).await.unwrap_err();
        assert!(matches!(err, Error::Failed { .. }), "cut at {cut}: {err:?}");
        assert!(!err.stderr().unwrap().is_empty(), "{err}");
        // What a failed receive leaves behind is the caller's to delete.
        if dest.join("s1").exists() {
            btrfs::delete(&dest.join("s1")).await.unwrap();
        }
    }
    assert_eq!(btrfs::receive(&dest, &full[..]).await.unwrap().name, "s1");
}

fn running(pid: u32) -> bool {
    // A zombie has exited; only its parent's bookkeeping is left.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn dropping_an_unfinished_receive_kills_btrfs_receive() {
    let pool = TestPool::new();
    let share = pool.subvolume("share");
    write(&share.join("f"), &vec![3u8; 1 << 20]);
    let s1 = btrfs::snapshot_readonly(&share, &pool.mount.join("s1"))
        .await
        .unwrap();
    let mut full = Vec::new();
    let mut stream = btrfs::send(&s1.path, None).unwrap();
    tokio::io::copy(&mut stream, &mut full).await.unwrap();
    let dest = pool.mount.join("recv");
    std::fs::create_dir(&dest).unwrap();

    let mut rx = btrfs::Receive::start(&dest).unwrap();
    rx.write_all(&full[..full.len() / 2]).await.unwrap();
    let pid = rx.id().expect("btrfs receive is running");
    assert!(running(pid));
    drop(rx);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(Instant::now() < deadline, "btrfs receive {pid} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn subvolume_facts_on_real_pools() {
    let (a, b) = (TestPool::new(), TestPool::new());
    let share = a.subvolume("share");
    let other = a.subvolume("other");
    let plain = a.mount.join("plain");
    std::fs::create_dir(&plain).unwrap();
    write(&plain.join("file"), b"x");

    assert!(btrfs::is_btrfs(&a.mount).unwrap());
    assert!(btrfs::is_btrfs(&plain).unwrap());
    assert!(!btrfs::is_btrfs(Path::new("/proc")).unwrap());
    assert!(
        btrfs::is_subvolume(&a.mount).unwrap(),
        "the top level is one"
    );
    assert!(btrfs::is_subvolume(&share).unwrap());
    assert!(!btrfs::is_subvolume(&plain).unwrap());
    assert!(!btrfs::is_subvolume(&plain.join("file")).unwrap());

    // Subvolumes of one pool have distinct st_dev yet are one filesystem.
    assert!(btrfs::same_filesystem(&share, &other).unwrap());
    assert!(btrfs::same_filesystem(&a.mount, &plain.join("file")).unwrap());
    assert!(!btrfs::same_filesystem(&share, &b.mount).unwrap());
    assert!(!btrfs::same_filesystem(&share, Path::new("/proc")).unwrap());

    let s = btrfs::show(&share).await.unwrap();
    assert_eq!((s.name.as_str(), s.readonly), ("share", false));
    assert!(s.created.is_some() && s.generation > 0);
    assert_eq!((s.parent_uuid, s.received_uuid), (None, None));
    // A plain directory inside a subvolume is not one (the kernel would answer
    // for the subvolume around it).
    let err = btrfs::show(&plain).await.unwrap_err();
    assert!(matches!(err, Error::NotSubvolume { .. }), "{err:?}");
    assert!(err.to_string().contains("plain"), "{err}");

    let snaps = a.mount.join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    assert!(btrfs::list(&snaps).await.unwrap().is_empty());
    btrfs::snapshot_readonly(&share, &snaps.join("s2"))
        .await
        .unwrap();
    btrfs::snapshot_readonly(&share, &snaps.join("s1"))
        .await
        .unwrap();
    std::fs::create_dir(snaps.join("a-plain-dir")).unwrap();
    write(&snaps.join("a-file"), b"");
    std::os::unix::fs::symlink(&share, snaps.join("a-link-to-share")).unwrap();
    let listed = btrfs::list(&snaps).await.unwrap();
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s1", "s2"]);
    assert!(listed
        .iter()
        .all(|snap| snap.readonly && snap.parent_uuid == Some(s.uuid)));
    assert_eq!(listed[0].path, snaps.join("s1"));

    let err = btrfs::snapshot_readonly(&share, &snaps.join("s1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err:?}");
    // Snapshots are made by ioctl: a source that is no subvolume is refused
    // by name, and nothing is created.
    let err = btrfs::snapshot_readonly(&plain, &snaps.join("s3"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotSubvolume { .. }), "{err:?}");
    assert!(!snaps.join("s3").exists());
    assert!(matches!(
        btrfs::list(Path::new("/proc")).await.unwrap_err(),
        Error::NotBtrfs { .. }
    ));

    btrfs::delete(&snaps.join("s1")).await.unwrap();
    let names: Vec<_> = btrfs::list(&snaps)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["s2"]);
    let err = btrfs::delete(&plain).await.unwrap_err();
    assert!(!err.stderr().unwrap().is_empty(), "{err}");
}

/// `btrfs subvolume show` run and parsed here, to hold `btrfs::show` (which
/// asks the kernel directly) to what btrfs-progs says.
fn progs_show(path: &Path) -> btrfs::Subvolume {
    let out = std::process::Command::new("btrfs")
        .args(["subvolume", "show"])
        .arg(path)
        .output()
        .expect("run btrfs subvolume show");
    assert!(out.status.success(), "{out:?}");
    btrfs::parse_show(path, &String::from_utf8_lossy(&out.stdout)).expect("parse show")
}

#[tokio::test]
async fn show_from_the_kernel_agrees_with_btrfs_progs() {
    let (a, b) = (TestPool::new(), TestPool::new());
    let share = a.subvolume("share");
    write(&share.join("f"), b"data");
    let snap = a.mount.join("snap");
    btrfs::snapshot_readonly(&share, &snap).await.unwrap();
    let got = btrfs::receive(&b.mount, btrfs::send(&snap, None).unwrap())
        .await
        .unwrap();
    for path in [&share, &snap, &got.path] {
        let (mut kernel, mut progs) = (btrfs::show(path).await.unwrap(), progs_show(path));
        // btrfs-progs prints the creation time to the second.
        let seconds = |s: &btrfs::Subvolume| s.created.map(|t| t.timestamp());
        assert_eq!(seconds(&kernel), seconds(&progs), "{}", path.display());
        (kernel.created, progs.created) = (None, None);
        // btrfs-progs does not print the ctransid at all.
        assert!(kernel.ctransid.is_some() && progs.ctransid.is_none());
        kernel.ctransid = None;
        assert_eq!(kernel, progs, "{}", path.display());
    }
    let received = btrfs::show(&got.path).await.unwrap();
    let sent = btrfs::show(&snap).await.unwrap();
    assert_eq!(received.received_uuid, Some(sent.uuid));
    assert!(received.readonly);
    // The transids: a snapshot copies its source's ctransid, so an untouched
    // one has not changed since it was created; a received one records the
    // ctransid it was sent at.
    assert_eq!(sent.changed_since_created(), Some(false));
    assert_eq!(received.stransid, sent.ctransid.unwrap());
    assert!(received.rtransid >= received.otransid && received.rtransid > 0);
    // Each snapshot commits its transaction: the next one is made in a later one.
    let again = btrfs::snapshot_readonly(&share, &a.mount.join("snap2"))
        .await
        .unwrap();
    assert!(again.otransid > sent.otransid);
}

fn assert_pool_gone(mount: &Path, dir: &Path) {
    assert!(
        !mount_points().iter().any(|m| m.starts_with(dir)),
        "{} is still mounted",
        mount.display()
    );
    assert_eq!(
        loop_devices_under(dir),
        Vec::<String>::new(),
        "loop device left"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn harness_pool_is_gone_after_drop() {
    let pool = TestPool::new();
    let devices = pool.loop_devices();
    assert_eq!(devices.len(), 1, "{devices:?}");
    let autoclear = common::run(
        "losetup",
        &[
            "-n".as_ref(),
            "-O".as_ref(),
            "AUTOCLEAR".as_ref(),
            devices[0].as_ref(),
        ],
    );
    assert_eq!(autoclear.trim(), "1", "mount -o loop should set autoclear");
    assert!(mount_points().contains(&pool.mount));
    let (mount, dir) = (pool.mount.clone(), pool.dir.clone());
    drop(pool);
    assert_pool_gone(&mount, &dir);
}

#[test]
fn harness_pool_is_gone_after_a_panicking_test() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let pool = TestPool::new();
        tx.send((pool.mount.clone(), pool.dir.clone())).unwrap();
        panic!("deliberate panic while holding a pool");
    })
    .join();
    assert!(result.is_err());
    let (mount, dir) = rx.recv().unwrap();
    assert_pool_gone(&mount, &dir);
}

#[test]
fn harness_cleans_leftovers_of_dead_test_processes() {
    common::require_root_and_btrfs();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let dir = std::env::temp_dir().join(format!("{}{dead_pid}-leftover", common::PREFIX));
    std::fs::create_dir(&dir).unwrap();
    let (image, mount) = (dir.join("pool.img"), dir.join("mnt"));
    std::fs::File::create(&image)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    std::fs::create_dir(&mount).unwrap();
    common::run("mkfs.btrfs", &["-q".as_ref(), image.as_os_str()]);
    common::run(
        "mount",
        &[
            "-o".as_ref(),
            "loop".as_ref(),
            image.as_os_str(),
            mount.as_os_str(),
        ],
    );
    assert!(mount_points().contains(&mount));

    common::clean_leftovers_of_dead_processes();
    assert_pool_gone(&mount, &dir);
}

#[test]
fn harness_tree_comparison_reports_the_first_difference() {
    let pool = TestPool::new();
    let (a, b) = (pool.mount.join("a"), pool.mount.join("b"));
    for dir in [&a, &b] {
        std::fs::create_dir(dir).unwrap();
        write(&dir.join("f"), b"same");
        write(&dir.join("g"), b"same");
    }
    let differs = |what: &str| {
        let diff = common::tree_difference(&common::tree_digest(&a), &common::tree_digest(&b))
            .unwrap_or_else(|| panic!("{what}: no difference found"));
        assert!(diff.contains(what), "expected `{what}` in: {diff}");
    };
    assert_eq!(
        common::tree_difference(&common::tree_digest(&a), &common::tree_digest(&b)),
        None
    );
    write(&b.join("f"), b"diff");
    differs("./f: File");
    write(&b.join("f"), b"same");
    std::fs::set_permissions(b.join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    differs("mode");
    std::fs::set_permissions(b.join("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(b.join("f"), Some(7), None).unwrap();
    differs("owner 0:0 vs 7:0");
    std::os::unix::fs::chown(b.join("f"), Some(0), None).unwrap();
    xattr::set(b.join("f"), "user.x", b"1").unwrap();
    differs("xattrs");
    xattr::remove(b.join("f"), "user.x").unwrap();
    std::fs::remove_file(b.join("g")).unwrap();
    std::fs::hard_link(b.join("f"), b.join("g")).unwrap();
    differs("hard links");
    std::fs::remove_file(b.join("g")).unwrap();
    differs("./g: only in the first tree");
    std::fs::File::create(b.join("g"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    // A hole inside a file's last block does not count (btrfs receive zeroes
    // it), so the hole spans blocks.
    differs("sparse: true");
}
