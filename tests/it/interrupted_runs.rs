//! `ferry task run` interrupted by Ctrl-C (SIGINT) mid-stream, through the real
//! binary: what each side keeps, and how the next run goes on from it.

use std::process::Stdio;
use std::time::Duration;

use ferry::store::{ReceiveFilter, ReceiveRow, Status};
use serde_json::Value;

use crate::common::assert_same_tree;
use crate::common::content::incompressible;
use crate::common::pair::Pair;

/// nas2's receive rows, newest first.
fn receive_rows(pair: &Pair) -> Vec<ReceiveRow> {
    pair.nas2
        .store()
        .receive_history(&ReceiveFilter::default())
        .expect("history")
}

/// Starts `task run photos` on 24 MiB at the task's 4 MiB/s, presses Ctrl-C
/// once the stream is going, and checks what the sender designed: exit 1 with
/// one line, the row failed `interrupted by shutdown` with the bytes it moved,
/// the snapshot kept as the one unconfirmed, and nothing visible on the
/// target. Returns the send row and the snapshot's name.
async fn interrupt_a_run(pair: &Pair) -> (Value, String) {
    incompressible(&pair.share.join("big.bin"), 24 << 20);
    let run = pair
        .nas1
        .command(&["task", "run", "photos"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry task run");
    let streaming = async {
        loop {
            let status = pair.nas1.json(&["status", "--json"]);
            if status["tasks"][0]["in_flight"]["stream_bytes"]
                .as_u64()
                .is_some_and(|b| b > 0)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), streaming)
        .await
        .expect("the stream starts");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(run.id().expect("pid")).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = tokio::time::timeout(Duration::from_secs(15), run.wait_with_output())
        .await
        .expect("task run ends within 15 s of Ctrl-C")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "ferry: task photos failed: interrupted by shutdown"
    );

    let row = pair.send_rows()[0].clone();
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["error"], "interrupted by shutdown", "{row}");
    assert_eq!(row["kind"], "full", "{row}");
    assert!(row["ended_at"].is_string(), "{row}");
    let moved = row["stream_bytes"].as_u64().expect("stream_bytes");
    assert!(moved > 0 && moved < 24 << 20, "{row}");
    let snapshot = row["snapshot"].as_str().expect("snapshot").to_string();
    assert_eq!(pair.local_snapshots(), vec![snapshot.clone()]);

    // Nothing half-received is visible on the target.
    assert!(!pair.latest().exists(), "latest points at a partial");
    let held = pair.nas2.json(&["status", "--json"]);
    assert_eq!(held["replicas"], serde_json::json!([]), "{held}");
    (row, snapshot)
}

/// Pins: Ctrl-C mid-stream fails the row as interrupted and exits 1 with one
/// line; the snapshot stays as the unconfirmed one; the receiver parks the
/// partial, invisible, for `resume_window`, and the next run continues it
/// from where it broke (no new snapshot), so the bytes already sent are not
/// sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_fails_the_row_keeps_the_snapshot_and_the_next_run_resumes() {
    let pair = Pair::new(&["--compress", "0", "--bwlimit", "4MiB"]).await;
    let (_, snapshot) = interrupt_a_run(&pair).await;
    let parked = async {
        loop {
            let row = receive_rows(&pair).remove(0);
            if row.parked_until.is_some() {
                return row;
            }
            assert_eq!(row.attempt.status, Status::Running, "{row:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let parked = tokio::time::timeout(Duration::from_secs(30), parked)
        .await
        .expect("the receiver parks the receive");
    assert_eq!(parked.attempt.snapshot, snapshot);

    pair.nas1.ok(&["task", "set", "photos", "--bwlimit", "0"]);
    pair.run_ok().await;
    let row = &pair.send_rows()[0];
    assert_eq!(row["status"], "succeeded", "{row}");
    assert_eq!(
        row["snapshot"],
        snapshot.as_str(),
        "a new snapshot was taken"
    );
    assert!(row["resumed_from"].as_u64().is_some_and(|b| b > 0), "{row}");
    assert_eq!(pair.replicas(), vec![snapshot.clone()]);
    assert_same_tree(&pair.share, &pair.replica_dir().join(&snapshot));
}

/// Pins: with parking off (`resume_window` 0), Ctrl-C leaves no partial on
/// the target at all: the receiver deletes it at once and fails its row; the
/// next run deletes the unconfirmed snapshot, takes a new one and sends it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_leaves_no_partial_where_the_receiver_does_not_park() {
    let pair = Pair::with_receiver(&["--compress", "0", "--bwlimit", "4MiB"], |c| {
        c.resume_window = Duration::ZERO;
    })
    .await;
    let (_, snapshot) = interrupt_a_run(&pair).await;
    let ended = async {
        loop {
            let row = receive_rows(&pair).remove(0);
            if row.attempt.status != Status::Running {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let row = tokio::time::timeout(Duration::from_secs(30), ended)
        .await
        .expect("the receiver ends the receive");
    assert_eq!(row.attempt.status, Status::Failed, "{row:?}");
    assert!(row.parked_until.is_none(), "{row:?}");
    assert!(
        pair.replicas().is_empty(),
        "a partial stayed: {:?}",
        pair.replicas()
    );

    pair.nas1.ok(&["task", "set", "photos", "--bwlimit", "0"]);
    pair.run_ok().await;
    let rows = pair.send_rows();
    let newest = rows[0]["snapshot"].as_str().expect("snapshot").to_string();
    assert_ne!(newest, snapshot);
    assert_eq!(rows[0]["kind"], "full");
    assert_eq!(pair.local_snapshots(), vec![newest.clone()]);
    assert_eq!(pair.replicas(), vec![newest.clone()]);
    assert_same_tree(&pair.share, &pair.replica_dir().join(&newest));
}
