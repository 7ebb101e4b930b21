//! What a run's time and rate are made of: the transfer, not the pruning.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::pair::Pair;

/// Pins issue 10, fault 9: on a busy filesystem, source retention's `btrfs
/// subvolume delete --commit-after` held `task run` for 30 s, and that time
/// counted in the rate it reported. Here every committing delete takes 20 s
/// (a `btrfs` wrapper first in the run's `PATH`): the run neither waits for
/// one nor counts one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_retention_neither_holds_the_run_nor_counts_in_its_rate() {
    let pair = Pair::new(&["--keep-source", "1"]).await;
    let real = String::from_utf8_lossy(
        &std::process::Command::new("sh")
            .args(["-c", "command -v btrfs"])
            .output()
            .expect("sh")
            .stdout,
    )
    .trim()
    .to_string();
    let bin = tempfile::tempdir().expect("tmp");
    let wrapper = bin.path().join("btrfs");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *' delete --commit-after '*) sleep 20;; esac\nexec {real} \"$@\"\n"
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for round in 0..2 {
        std::fs::write(pair.share.join("data"), format!("round {round}")).expect("write");
        let started = Instant::now();
        let out = pair
            .nas1
            .command(&["task", "run", "photos"])
            .env("PATH", &path)
            .output()
            .await
            .expect("run");
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            took < Duration::from_secs(15),
            "the run took {took:?}: {stdout}"
        );
        assert!(stdout.contains(" of transfer ("), "{stdout}");
    }
    // Retention did delete the first snapshot.
    assert_eq!(pair.local_snapshots().len(), 1);
}
