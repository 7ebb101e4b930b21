//! What a run does around its snapshot, through the real binary: it skips a
//! share that has not changed (and `status` counts it current), and it runs
//! the task's hooks with their environment, failing before the snapshot when
//! pre-snapshot fails and thawing after it even when the send fails.

use std::path::{Path, PathBuf};

use crate::common::daemon::Daemon;
use crate::common::pair::Pair;

fn last_row(pair: &Pair) -> serde_json::Value {
    pair.send_rows()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_share_is_skipped_and_counted_current() {
    let pair = Pair::new(&[]).await;
    std::fs::write(pair.share.join("a"), b"1").expect("write");
    pair.run_ok().await;
    let s1 = pair.local_snapshots()[0].clone();

    // The snapshot moved the share's generation, not its content: no change.
    let out = pair.run_ok().await;
    assert!(out.contains(&format!("no change since {s1}")), "{out}");
    assert_eq!(pair.local_snapshots(), [s1.as_str()]);
    let row = last_row(&pair);
    assert_eq!(row["status"], "skipped");
    assert_eq!(row["error"], format!("no change since {s1}"));
    assert_eq!(row["unchanged"], true);
    // Not an error: `task show` and `task list` say skipped, with no error.
    let shown = pair.nas1.json(&["task", "show", "photos", "--json"]);
    assert_eq!(shown["last_status"], "skipped", "{shown}");
    assert!(shown["last_error"].is_null(), "{shown}");
    assert!(pair.nas1.json(&["task", "list", "--json"])[0]["last_error"].is_null());

    // Current since that check, not since the snapshot.
    let status = pair.nas1.json(&["status", "--json"]);
    let task = &status["tasks"][0];
    assert_eq!(task["current_at"], row["started_at"], "{task}");
    assert_ne!(task["current_at"], task["last_success"], "{task}");
    assert_eq!(task["failures_in_a_row"], 0);
    let lag = task["lag_seconds"].as_i64().expect("lag");
    assert!((0..60).contains(&lag), "{task}");

    // A change is sent; with skip-unchanged off, an unchanged share is too.
    std::fs::write(pair.share.join("b"), b"2").expect("write");
    let out = pair.run_ok().await;
    assert!(out.contains(&format!("incremental from {s1}")), "{out}");
    pair.nas1
        .ok(&["task", "set", "photos", "--skip-unchanged", "off"]);
    let out = pair.run_ok().await;
    assert!(out.contains("(incremental from"), "{out}");
    assert_eq!(last_row(&pair)["status"], "succeeded");
}

/// A hook that records its environment in `dir/name`, then runs `then`.
fn recorder(dir: &Path, name: &str, then: &str) -> String {
    format!(
        "env | grep -E '^FERRY_(TASK|SHARE|SNAPSHOT|TARGET|STATUS|ERROR)=' | sort > {}; {then}",
        dir.join(name).display()
    )
}

fn env_of(dir: &Path, name: &str) -> Vec<String> {
    let path: PathBuf = dir.join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_with_their_environment_around_the_snapshot() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let pre = recorder(d, "pre", "echo froze; echo noted >&2");
    let post = recorder(d, "post", "true");
    let success = recorder(d, "success", "true");
    let failure = recorder(d, "failure", "true");
    let mut pair = Pair::new(&[
        "--pre-snapshot",
        &pre,
        "--post-snapshot",
        &post,
        "--on-success",
        &success,
        "--on-failure",
        &failure,
    ])
    .await;
    let share = pair.share.display().to_string();
    std::fs::write(pair.share.join("a"), b"1").expect("write");
    let out = pair
        .nas1
        .command(&["task", "run", "photos"])
        .env("FERRY_LOG", "info")
        .output()
        .await
        .expect("run");
    assert!(out.status.success());
    // Hook output goes to the log, named by hook and stream.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.lines()
            .any(|l| l.contains("pre-snapshot") && l.contains("stdout") && l.contains("froze")),
        "{log}"
    );
    let snap = pair
        .src
        .mount
        .join(".ferry-snapshots/photos")
        .join(&pair.local_snapshots()[0])
        .display()
        .to_string();
    let env = |status: &str, snapshot: &str, error: &str| {
        vec![
            format!("FERRY_ERROR={error}"),
            format!("FERRY_SHARE={share}"),
            format!("FERRY_SNAPSHOT={snapshot}"),
            format!("FERRY_STATUS={status}"),
            "FERRY_TARGET=nas2".to_string(),
            "FERRY_TASK=photos".to_string(),
        ]
    };
    assert_eq!(env_of(d, "pre"), env("running", "", ""));
    assert_eq!(env_of(d, "post"), env("snapshotted", &snap, ""));
    assert_eq!(env_of(d, "success"), env("succeeded", &snap, ""));
    assert!(!d.join("failure").exists());

    // A failing pre-snapshot hook fails the run before any snapshot, with its
    // first stderr line; post-snapshot does not run (nothing was frozen).
    std::fs::remove_file(d.join("post")).expect("rm");
    let failing = recorder(
        d,
        "pre",
        "echo froze; echo 'database is busy' >&2; echo more >&2; exit 4",
    );
    pair.nas1
        .ok(&["task", "set", "photos", "--pre-snapshot", &failing]);
    std::fs::write(pair.share.join("b"), b"2").expect("write");
    let err = pair.run_failed().await;
    let reason = "pre-snapshot hook failed (exit 4): database is busy";
    assert!(err.contains(reason), "{err}");
    assert_eq!(last_row(&pair)["error"], reason);
    assert_eq!(pair.local_snapshots().len(), 1, "no snapshot was taken");
    assert!(!d.join("post").exists());
    assert_eq!(env_of(d, "failure"), env("failed", "", reason));

    // A send that fails after the snapshot: post-snapshot has thawed already.
    pair.nas1
        .ok(&["task", "set", "photos", "--pre-snapshot", &pre]);
    let (meta, data) = pair.stop_receiver().await;
    pair.receiver = Some(
        Daemon::start(&pair.nas2.state, |c| {
            c.meta_port = meta.port();
            c.data_port = data.port();
            c.max_receives = 0; // every Begin is refused as busy
            c.slot_wait = std::time::Duration::ZERO;
        })
        .await,
    );
    // Refused as busy, without reconnecting to resume for ten minutes.
    let config = d.join("ferry.toml");
    std::fs::write(&config, "[sender]\nresume_for = \"0s\"\n").expect("config");
    let out = pair
        .nas1
        .command(&["task", "run", "photos"])
        .env("FERRY_CONFIG", &config)
        .output()
        .await
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("receives"), "{err}");
    let newest = pair.local_snapshots().last().cloned().expect("a snapshot");
    let snap = pair
        .src
        .mount
        .join(".ferry-snapshots/photos")
        .join(newest)
        .display()
        .to_string();
    assert_eq!(env_of(d, "post"), env("snapshotted", &snap, ""));
    let failed = env_of(d, "failure");
    assert!(
        failed.contains(&"FERRY_STATUS=failed".to_string()),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|l| l.starts_with("FERRY_ERROR=") && l.contains("receives")),
        "{failed:?}"
    );
}
