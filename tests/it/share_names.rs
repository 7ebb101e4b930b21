//! Share names: any safe single path component replicates, and
//! `--replica-name` names the replica line, so two shares of one name can go
//! to one target.

use crate::common::assert_same_tree;
use crate::common::content::{change, populate};
use crate::common::ferry::task_add;
use crate::common::pair::Pair;
use crate::common::TestPool;

fn add(pair: &Pair, task: &str, share: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let share_s = share.to_str().expect("utf8");
    pair.nas1.run(&task_add(task, share_s, "5m", extra))
}

async fn run_ok(pair: &Pair, task: &str) -> String {
    let out = pair.nas1.run_async(&["task", "run", task]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{task}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn latest(pair: &Pair, line: &str) -> std::path::PathBuf {
    ferry::receiver::replica_dir(&pair.dst.mount, pair.peer.uuid, line).join("latest")
}

/// Pins issue 10, fault 7: shares named `My Photos` or `fotos-ñ` could not be
/// replicated at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_with_spaces_letters_beyond_ascii_and_long_names_replicate() {
    let pair = Pair::new(&[]).await;
    let long = format!("{}-ñ", "a".repeat(230));
    for (task, name) in [
        ("photos2", "My Photos"),
        ("fotos", "fotos-ñ"),
        ("long", long.as_str()),
    ] {
        let share = pair.src.subvolume(name);
        populate(&share);
        let out = add(&pair, task, &share, &[]);
        assert!(out.status.success(), "{name}: {out:?}");
        let first = run_ok(&pair, task).await;
        assert!(first.contains("(full)"), "{first}");
        change(&share);
        let second = run_ok(&pair, task).await;
        assert!(second.contains("(incremental from "), "{second}");
        assert_same_tree(&share, &latest(&pair, name));
    }
}

/// Pins issue 10, fault 7: two shares with the same directory name on
/// different pools could not go to one target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shares_of_one_name_go_to_one_target_under_replica_names() {
    let pair = Pair::new(&[]).await;
    let other_pool = TestPool::new();
    let other = other_pool.subvolume("photos");
    std::fs::write(other.join("other"), b"the other pool's photos").expect("write");
    let line = pair.nas1.refused(
        2,
        &[
            "task",
            "add",
            "photos-b",
            "--share",
            other.to_str().expect("utf8"),
            "--target",
            "nas2",
            "--pool",
            "backup",
            "--frequency",
            "5m",
        ],
    );
    assert!(line.contains("--replica-name"), "{line}");
    for bad in [".hidden", "a/b", ""] {
        let line = pair.nas1.refused(
            2,
            &[
                "task",
                "add",
                "photos-b",
                "--share",
                other.to_str().expect("utf8"),
                "--target",
                "nas2",
                "--pool",
                "backup",
                "--frequency",
                "5m",
                "--replica-name",
                bad,
            ],
        );
        assert!(line.contains("--replica-name"), "{bad:?}: {line}");
    }
    let out = add(
        &pair,
        "photos-b",
        &other,
        &["--replica-name", "photos on pool b"],
    );
    assert!(out.status.success(), "{out:?}");
    let shown = pair.nas1.json(&["task", "show", "photos-b", "--json"]);
    assert_eq!(shown["replica_name"], "photos on pool b");
    populate(&pair.share);
    run_ok(&pair, "photos").await;
    let out = run_ok(&pair, "photos-b").await;
    assert!(out.contains("sent photos on pool b_photos-b_"), "{out}");
    assert_same_tree(&pair.share, &latest(&pair, "photos"));
    assert_same_tree(&other, &latest(&pair, "photos on pool b"));
}
