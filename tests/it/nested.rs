//! Nested subvolumes: btrfs send leaves them out, so ferry finds them (from the
//! kernel's root references), refuses a task over them unless acknowledged, and
//! names them in every run's row, the CLI line and `status`.

use std::path::{Path, PathBuf};

use ferry::btrfs;

use crate::common::ferry::{task_add, Node};
use crate::common::pair::Pair;
use crate::common::{assert_same_tree, TestPool};

fn create(path: &Path) {
    crate::common::run(
        "btrfs",
        &["subvolume".as_ref(), "create".as_ref(), path.as_os_str()],
    );
}

#[test]
fn nested_subvolumes_are_found_at_any_depth_but_not_inside_each_other() {
    let pool = TestPool::new();
    let share = pool.subvolume("share");
    assert!(btrfs::nested_subvolumes(&share).unwrap().is_empty());
    std::fs::create_dir_all(share.join("a/b c")).unwrap();
    create(&share.join("inner"));
    create(&share.join("a/b c/fotos-ñ"));
    create(&share.join("inner/deeper"));
    // A sibling subvolume at the top level is not inside the share.
    pool.subvolume("sibling");
    let found = btrfs::nested_subvolumes(&share).unwrap();
    assert_eq!(
        found,
        [PathBuf::from("a/b c/fotos-ñ"), PathBuf::from("inner")]
    );
    assert_eq!(
        btrfs::nested_subvolumes(&share.join("inner")).unwrap(),
        [PathBuf::from("deeper")]
    );
    let err = btrfs::nested_subvolumes(&share.join("a")).unwrap_err();
    assert!(matches!(err, btrfs::Error::NotSubvolume { .. }), "{err:?}");
}

#[test]
fn hundreds_of_nested_subvolumes_take_more_than_one_kernel_call() {
    let pool = TestPool::new();
    let share = pool.subvolume("share");
    for i in 0..300 {
        create(&share.join(format!("n{i:03}")));
    }
    let found = btrfs::nested_subvolumes(&share).unwrap();
    assert_eq!(found.len(), 300);
    assert_eq!(found[299], PathBuf::from("n299"));
}

/// Pins issue 10, fault 1: a nested subvolume was dropped from the replica
/// without a word. `task add` names it and refuses until `--nested skip`.
#[test]
fn task_add_names_nested_subvolumes_and_refuses_them_unless_skipped() {
    crate::common::require_root_and_btrfs();
    let pool = TestPool::new();
    let share = pool.subvolume("photos");
    std::fs::create_dir(share.join("albums")).unwrap();
    create(&share.join("albums/2024"));
    create(&share.join("inner"));
    let node = Node::init("nas1");
    node.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "127.0.0.1",
        "--fingerprint",
        "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]);
    let share_s = share.to_str().expect("utf8");
    let args = task_add("photos", share_s, "5m", &[]);
    let line = node.refused(2, &args);
    assert!(line.contains("albums/2024, inner"), "{line}");
    assert!(line.contains("--nested skip"), "{line}");
    assert!(line.contains("task of its own"), "{line}");
    let mut skip = args.to_vec();
    skip.extend(["--nested", "skip"]);
    let out = node.ok(&skip);
    assert!(out.contains("2 nested subvolume(s) left out"), "{out}");
    let mut bad = args.to_vec();
    bad[2] = "other";
    bad.extend(["--nested", "include"]);
    node.refused(2, &bad);
}

/// Pins issue 10, fault 1: runs succeeded while the replica lacked `inner/`,
/// and a directory turned into a nested subvolume vanished from the replica,
/// with no word anywhere. Every run now names them: its row, the CLI line,
/// `status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_names_the_nested_subvolumes_it_leaves_out() {
    let pair = Pair::new(&[]).await;
    let share = &pair.share;
    std::fs::create_dir(share.join("docs")).unwrap();
    for f in ["d1", "d2"] {
        std::fs::write(share.join("docs").join(f), f).unwrap();
    }
    std::fs::write(share.join("top"), b"top").unwrap();
    let out = pair.run_ok().await;
    assert!(!out.contains("warning"), "{out}");
    assert!(pair.send_rows()[0]["warnings"]
        .as_array()
        .expect("list")
        .is_empty());
    assert_same_tree(share, &pair.latest());

    // A nested subvolume appears, and docs/ becomes one, contents and all.
    create(&share.join("inner"));
    std::fs::write(share.join("inner/kept-out"), b"x").unwrap();
    std::fs::rename(share.join("docs"), share.join("docs.old")).unwrap();
    create(&share.join("docs"));
    for f in ["d1", "d2"] {
        // Across a subvolume boundary a rename is EXDEV: copy, as mv does.
        std::fs::copy(share.join("docs.old").join(f), share.join("docs").join(f)).unwrap();
    }
    std::fs::remove_dir_all(share.join("docs.old")).unwrap();
    let out = pair.run_ok().await;
    let expected = "nested subvolumes are not replicated (btrfs send stops at them): docs, inner";
    assert!(out.contains(&format!("warning: {expected}")), "{out}");
    assert_eq!(out.trim_end().lines().count(), 1, "{out}");
    let rows = pair.send_rows();
    let warnings = rows[0]["warnings"].as_array().expect("list");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].as_str().expect("text").starts_with(expected));
    let status = pair.nas1.json(&["status", "--json"]);
    assert_eq!(status["tasks"][0]["warnings"], rows[0]["warnings"]);
    let text = pair.nas1.ok(&["status"]);
    assert!(
        text.contains(&format!("task photos: warning: {expected}")),
        "{text}"
    );
    let history = pair.nas1.ok(&["history", "send"]);
    assert!(history.contains(expected), "{history}");
    // What btrfs send carries is replicated; the nested subvolumes are not.
    assert_same_tree(share, &pair.latest());
    assert!(!pair.latest().join("inner").exists());
    assert!(!pair.latest().join("docs").exists());
    assert!(pair.latest().join("top").exists());
}

/// Found by the randomized workload: btrfs send cannot delete a directory
/// that held a nested subvolume (its empty placeholder stays in the parent
/// snapshot), so an incremental left the directory on the target, renamed
/// `o<inode>-<generation>-0`. Such a base is skipped, and the run says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_whose_nested_subvolume_directory_is_gone_is_skipped() {
    let pair = Pair::new(&["--nested", "skip"]).await;
    let share = &pair.share;
    std::fs::create_dir_all(share.join("vms/old")).unwrap();
    std::fs::write(share.join("vms/old/notes"), b"x").unwrap();
    create(&share.join("vms/old/disk"));
    pair.run_ok().await;
    let base = pair.local_snapshots().pop().expect("a snapshot");
    // The directory goes, nested subvolume and all.
    crate::common::run(
        "btrfs",
        &[
            "subvolume".as_ref(),
            "delete".as_ref(),
            share.join("vms/old/disk").as_os_str(),
        ],
    );
    std::fs::remove_dir_all(share.join("vms/old")).unwrap();
    let out = pair.run_ok().await;
    assert!(out.contains("(full)"), "{out}");
    assert!(
        out.contains(&format!(
            "warning: base {base} skipped: directory vms/old, which held the nested subvolume vms/old/disk, is gone"
        )),
        "{out}"
    );
    assert_same_tree(share, &pair.latest());
    let left: Vec<String> = crate::common::pair::names_in(&pair.latest());
    assert!(!left.iter().any(|n| n.starts_with('o')), "{left:?}");
    // A nested subvolume deleted from a directory that stays is no trouble.
    create(&share.join("vms/new"));
    pair.run_ok().await;
    crate::common::run(
        "btrfs",
        &[
            "subvolume".as_ref(),
            "delete".as_ref(),
            share.join("vms/new").as_os_str(),
        ],
    );
    std::fs::write(share.join("vms/after"), b"y").unwrap();
    let out = pair.run_ok().await;
    assert!(out.contains("(incremental from "), "{out}");
    assert_same_tree(share, &pair.latest());
}
