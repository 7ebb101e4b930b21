//! Replication end to end on real pools, real TLS on 127.0.0.1 and the real
//! binary: full, incremental and no-change runs, fallbacks when the target lost
//! snapshots, retention on both sides, history on both sides.

use crate::common::assert_same_tree;
use crate::common::content::{change, incompressible, populate};
use crate::common::pair::Pair;

fn u64_of(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_then_no_change_replicas_equal_the_source() {
    let pair = Pair::new(&[]).await;
    populate(&pair.share);
    incompressible(&pair.share.join("big.bin"), 8 << 20);

    let out = pair.run_ok().await;
    assert!(out.contains("(full)"), "{out}");
    assert_same_tree(&pair.share, &pair.latest());

    change(&pair.share);
    let out = pair.run_ok().await;
    assert!(out.contains("(incremental from photos_photos_"), "{out}");
    assert_same_tree(&pair.share, &pair.latest());

    let out = pair.run_ok().await;
    assert!(out.contains("incremental"), "{out}");
    assert_same_tree(&pair.share, &pair.latest());

    let sends = pair.send_rows();
    let sends = sends.as_array().expect("rows");
    assert_eq!(sends.len(), 3);
    let (none, incr, full) = (&sends[0], &sends[1], &sends[2]);
    for row in sends {
        assert_eq!(row["status"], "succeeded", "{row}");
        assert!(row["error"].is_null(), "{row}");
        assert!(row["ended_at"].is_string(), "{row}");
        assert!(row["received_uuid"].is_string(), "{row}");
    }
    assert_eq!(full["kind"], "full");
    assert!(full["parent"].is_null());
    assert_eq!(incr["kind"], "incremental");
    assert_eq!(incr["parent"], full["snapshot"]);
    assert_eq!(none["parent"], incr["snapshot"]);
    let full_bytes = u64_of(&full["stream_bytes"]);
    assert!(full_bytes > 8 << 20, "full stream {full_bytes}");
    assert!(
        u64_of(&incr["stream_bytes"]) * 20 < full_bytes,
        "incremental is not small"
    );
    assert!(
        u64_of(&none["stream_bytes"]) * 100 < full_bytes,
        "no-change is not tiny"
    );
    // zstd shrank the compressible part on the wire.
    assert!(u64_of(&full["wire_bytes"]) < full_bytes, "{full}");

    // The received uuid of each replica is the uuid of the snapshot it came from.
    let receives = pair.receive_rows();
    let receives = receives.as_array().expect("rows");
    assert_eq!(receives.len(), 3);
    for (rx, tx) in receives.iter().zip(sends) {
        assert_eq!(rx["status"], "succeeded", "{rx}");
        assert_eq!(rx["snapshot"], tx["snapshot"]);
        assert_eq!(rx["received_uuid"], tx["received_uuid"]);
        assert_eq!(rx["stream_bytes"], tx["stream_bytes"]);
        assert_eq!(rx["source"], "nas1");
    }
    let local = ferry::btrfs::show(
        &pair
            .src
            .mount
            .join(".ferry-snapshots/photos")
            .join(none["snapshot"].as_str().expect("name")),
    )
    .await
    .expect("show");
    assert_eq!(none["received_uuid"], local.uuid.to_string());
    let latest = std::fs::read_link(pair.latest()).expect("latest is a symlink");
    assert_eq!(latest.to_str(), none["snapshot"].as_str());

    // Status on both sides: a fresh recovery point, nothing failing or in flight.
    let status = pair.nas1.json(&["status", "--json"]);
    let task = &status["tasks"][0];
    assert_eq!(task["task"], "photos");
    assert!(task["last_success"].is_string(), "{task}");
    assert!(u64_of(&task["lag_seconds"]) < 120, "{task}");
    assert_eq!(task["failures_in_a_row"], 0);
    assert!(task["in_flight"].is_null());
    assert!(task["next_run"].is_string(), "{task}");
    let held = pair.nas2.json(&["status", "--json"]);
    let replica = &held["replicas"][0];
    assert_eq!(
        (replica["source"].as_str(), replica["share"].as_str()),
        (Some("nas1"), Some("photos"))
    );
    assert_eq!(replica["newest"], none["snapshot"]);
    assert_eq!(u64_of(&replica["replicas"]), 3);
    let text = pair.nas2.ok(&["status"]);
    assert!(text.contains("SOURCE") && text.contains("photos"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_deleted_on_the_target_makes_the_next_run_fall_back() {
    let pair = Pair::new(&[]).await;
    populate(&pair.share);
    pair.run_ok().await;
    change(&pair.share);
    pair.run_ok().await;
    let replicas = pair.replicas();
    assert_eq!(replicas.len(), 2);

    // Someone deletes the newest replica on nas2 by hand.
    ferry::btrfs::delete(&pair.replica_dir().join(&replicas[1]))
        .await
        .expect("delete");
    std::fs::write(pair.share.join("after-loss"), b"x").expect("write");
    let out = pair.run_ok().await;
    assert!(
        out.contains(&format!("incremental from {}", replicas[0])),
        "expected the older common parent: {out}"
    );
    assert_same_tree(&pair.share, &pair.latest());

    // Every replica gone: a full send.
    for name in pair.replicas() {
        ferry::btrfs::delete(&pair.replica_dir().join(name))
            .await
            .expect("delete");
    }
    let out = pair.run_ok().await;
    assert!(out.contains("(full)"), "{out}");
    assert_same_tree(&pair.share, &pair.latest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_counts_and_the_common_base_on_both_sides() {
    let pair = Pair::new(&[
        "--keep-source",
        "2",
        "--keep-target",
        "3",
        "--preserve-target",
        "none",
    ])
    .await;
    populate(&pair.share);
    for i in 0..5 {
        std::fs::write(pair.share.join(format!("run-{i}")), b"x").expect("write");
        pair.run_ok().await;
    }
    let sent: Vec<String> = pair
        .send_rows()
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["snapshot"].as_str().expect("name").to_string())
        .collect();
    // Newest first in history; oldest first on disk.
    let mut newest_two = sent[..2].to_vec();
    newest_two.reverse();
    assert_eq!(pair.local_snapshots(), newest_two);
    let mut newest_three = sent[..3].to_vec();
    newest_three.reverse();
    assert_eq!(pair.replicas(), newest_three);
    assert_same_tree(&pair.share, &pair.latest());
}
