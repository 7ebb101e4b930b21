//! Retention grids on both sides through the real binary: the grid keeps what
//! it should here and on the target, `task prune --dry-run` says so rule by
//! rule and changes nothing, `task prune` applies it and the chain goes on;
//! a receiver without `retention-grid` keeps its count, and the sender says so.

use crate::common::daemon::Daemon;
use crate::common::pair::Pair;
use ferry::wire::Features;
use serde_json::Value;

/// A run after a change, so that skip-unchanged does not skip it.
async fn changed_run(pair: &Pair, i: usize) -> String {
    std::fs::write(pair.share.join(format!("run-{i}")), b"x").expect("write");
    pair.run_ok().await
}

/// Names of what the JSON lists, with their action.
fn actions(entries: &Value) -> Vec<(String, String)> {
    entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_string(),
                e["action"].as_str().expect("action").to_string(),
            )
        })
        .collect()
}

fn pairs(names: &[String], actions: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .cloned()
        .zip(actions.iter().map(|a| a.to_string()))
        .collect()
}

// The grid `1y` keeps the oldest snapshot of this year: the first run's,
// whatever hour or day the test runs in (short of New Year's Eve).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grids_keep_their_periods_on_both_sides_and_prune_says_which_rule() {
    let pair = Pair::new(&[
        "--keep-source",
        "1",
        "--preserve-source",
        "1y",
        "--keep-target",
        "1",
        "--preserve-target",
        "1y",
    ])
    .await;
    for i in 0..3 {
        changed_run(&pair, i).await;
    }
    let sent: Vec<String> = pair
        .send_rows()
        .as_array()
        .expect("rows")
        .iter()
        .rev()
        .map(|r| r["snapshot"].as_str().expect("name").to_string())
        .collect();
    let (s1, s3) = (sent[0].clone(), sent[2].clone());
    // The year's first and the newest stay on both sides; the middle one goes.
    assert_eq!(pair.local_snapshots(), [s1.clone(), s3.clone()]);
    assert_eq!(pair.replicas(), [s1.clone(), s3.clone()]);
    // The receiver placed them by the source's creation time.
    let held = pair.nas2.store().newest_replicas().expect("replicas");
    assert!(held[0].0.created_at.is_some(), "{held:?}");

    // Without the grids, both s1s go: the dry run says so and deletes nothing.
    pair.nas1.ok(&[
        "task",
        "set",
        "photos",
        "--preserve-source",
        "none",
        "--preserve-target",
        "none",
    ]);
    let dry = pair
        .nas1
        .json(&["task", "prune", "photos", "--dry-run", "--json"]);
    let kept = [s1.clone(), s3.clone()];
    assert_eq!(actions(&dry["source"]), pairs(&kept, &["delete", "keep"]));
    assert_eq!(
        actions(&dry["target"]["replicas"]),
        pairs(&kept, &["delete", "keep"])
    );
    assert_eq!(dry["source"][0]["reason"], "no rule keeps it");
    assert_eq!(
        dry["source"][1]["rules"],
        serde_json::json!(["newest 1", "common base"])
    );
    assert_eq!(dry["target"]["grid_applied"], true);
    assert_eq!(dry["target"]["cap"], 250);
    assert!(dry["target"]["note"].is_null());
    assert!(dry["deleted_target"].is_null());
    let text = pair.nas1.ok(&["task", "prune", "photos", "--dry-run"]);
    assert!(
        text.contains("dry run: would delete 1 snapshot(s) here and 1 replica(s) on nas2"),
        "{text}"
    );
    assert!(text.contains("no rule keeps it"), "{text}");
    assert_eq!(pair.local_snapshots(), kept);
    assert_eq!(pair.replicas(), kept);

    // Pruned now, on both sides; the chain goes on from s3.
    let out = pair.nas1.ok(&["task", "prune", "photos"]);
    assert!(
        out.contains("deleted 1 snapshot(s) here and 1 replica(s) on nas2"),
        "{out}"
    );
    assert_eq!(pair.local_snapshots(), [s3.as_str()]);
    assert_eq!(pair.replicas(), [s3.as_str()]);
    let out = changed_run(&pair, 9).await;
    assert!(out.contains(&format!("incremental from {s3}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_without_grids_keeps_its_count_and_the_sender_says_so() {
    let mut pair = Pair::new(&["--keep-target", "2", "--preserve-target", "1y"]).await;
    let (meta, data) = pair.stop_receiver().await;
    pair.receiver = Some(
        Daemon::start(&pair.nas2.state, |c| {
            c.meta_port = meta.port();
            c.data_port = data.port();
            // The predecessor release offers no features at all.
            c.features = Features::default();
        })
        .await,
    );
    for i in 0..3 {
        changed_run(&pair, i).await;
    }
    // It got `keep` only: the year's first replica went like any other.
    let replicas = pair.replicas();
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    let held = pair.nas2.store().newest_replicas().expect("replicas");
    assert!(held[0].0.created_at.is_none(), "no creation time was sent");

    let dry = pair
        .nas1
        .json(&["task", "prune", "photos", "--dry-run", "--json"]);
    assert_eq!(dry["target"]["grid_applied"], false);
    assert!(dry["target"]["cap"].is_null());
    let note = dry["target"]["note"].as_str().expect("a note");
    assert!(note.contains("without retention grids"), "{note}");
    assert!(note.contains("newest 2"), "{note}");
    assert_eq!(
        actions(&dry["target"]["replicas"]),
        pairs(&replicas, &["keep", "keep"])
    );
    let out = pair.nas1.ok(&["task", "prune", "photos"]);
    assert!(out.contains("it prunes at its next receive"), "{out}");
    assert_eq!(pair.replicas(), replicas);
}
