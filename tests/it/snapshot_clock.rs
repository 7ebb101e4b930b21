//! The sender's wall clock stepped back (NTP, a fixed RTC), under libfaketime
//! on the real `ferry task run` only: names are never reused, order comes from
//! creation transids, and a task keeps at most one unconfirmed snapshot.

use std::path::PathBuf;

use crate::common::assert_same_tree;
use crate::common::content::incompressible;
use crate::common::daemon::Daemon;
use crate::common::pair::Pair;

/// `ferry task run photos` on nas1 with its wall clock standing at `at` (UTC):
/// stopped, so a slow machine cannot move a snapshot's name by a second.
async fn run_at(pair: &Pair, at: &str) -> std::process::Output {
    tokio::process::Command::new("faketime")
        .args([
            "-m",
            "--exclude-monotonic",
            "-f",
            at,
            env!("CARGO_BIN_EXE_ferry"),
        ])
        .args(["task", "run", "photos"])
        .env("TZ", "UTC")
        .env("FERRY_STATE_DIR", &pair.nas1.state)
        .env("FERRY_CONFIG", "/dev/null")
        .env_remove("FERRY_LOG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run faketime (apt-get install faketime)")
}

async fn run_ok_at(pair: &Pair, at: &str) -> String {
    let out = run_at(pair, at).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "run at {at} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn stream_bytes(pair: &Pair) -> u64 {
    pair.send_rows()[0]["stream_bytes"]
        .as_u64()
        .expect("stream_bytes")
}

/// 200 KB of new data in the share, as each hourly run of the issue had.
fn change(pair: &Pair, n: u32) {
    incompressible(&pair.share.join(format!("change-{n}")), 200_000);
}

/// Pins issue 10, fault 5: runs at 08:00, 09:00, 10:00 with `--keep-source
/// 1`, then the clock back at 08:00:00. The 08:00:00 run failed "snapshot
/// ... is already held" (permanent), and every later run used the pre-jump
/// 10:00:00 snapshot as its parent because it sorted newest by name,
/// re-sending everything since the jump and keeping that snapshot pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepped_back_neither_reuses_a_name_nor_reorders_the_parents() {
    let pair = Pair::new(&["--keep-source", "1"]).await;
    for (n, at) in [
        "2026-11-21 08:00:00",
        "2026-11-21 09:00:00",
        "2026-11-21 10:00:00",
    ]
    .into_iter()
    .enumerate()
    {
        change(&pair, n as u32);
        run_ok_at(&pair, at).await;
    }
    assert_eq!(pair.local_snapshots(), ["photos_photos_20261121T100000Z"]);

    // The clock steps back: the target still holds the 08:00:00 name.
    change(&pair, 10);
    let out = run_ok_at(&pair, "2026-11-21 08:00:00").await;
    assert!(
        out.contains("sent photos_photos_20261121T080000Z-2 (incremental from photos_photos_20261121T100000Z)"),
        "{out}"
    );
    assert!(stream_bytes(&pair) < 300_000, "{}", stream_bytes(&pair));
    // Every later run starts from the one before it, not from 10:00:00.
    for (n, at) in ["2026-11-21 08:30:00", "2026-11-21 09:00:00"]
        .into_iter()
        .enumerate()
    {
        change(&pair, 11 + n as u32);
        let before = pair.local_snapshots();
        assert_eq!(before.len(), 1, "{before:?}");
        let out = run_ok_at(&pair, at).await;
        assert!(
            out.contains(&format!("(incremental from {})", before[0])),
            "{out}"
        );
        assert!(
            stream_bytes(&pair) < 300_000,
            "200 KB of change re-sent as {} bytes",
            stream_bytes(&pair)
        );
    }
    // 09:00:00 was taken before the jump and the target holds it.
    assert_eq!(pair.local_snapshots(), ["photos_photos_20261121T090000Z-2"]);
    assert_same_tree(&pair.share, &pair.latest());
}

/// Pins issue 10, fault 5: with the clock an hour behind and every run
/// failing after its snapshot (the target full), `--keep-source 2` ended
/// with 7 snapshots, 5 of them unconfirmed: only those sorting newer than
/// the parent by name were deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_one_unconfirmed_snapshot_whatever_the_clock_says() {
    let mut pair = Pair::new(&["--keep-source", "2"]).await;
    for at in ["2026-11-21 10:00:00", "2026-11-21 11:00:00"] {
        change(&pair, 0);
        run_ok_at(&pair, at).await;
    }
    // Every receive now fails once the snapshot is taken.
    let (meta, data) = pair.stop_receiver().await;
    let failing = Daemon::start(&pair.nas2.state, |c| {
        c.meta_port = meta.port();
        c.data_port = data.port();
        c.btrfs = PathBuf::from("/bin/false");
        // Nothing to resume: each run fails as soon as its receive does.
        c.resume_window = std::time::Duration::ZERO;
    })
    .await;
    for at in [
        "2026-11-21 10:10:00",
        "2026-11-21 10:20:00",
        "2026-11-21 10:30:00",
        "2026-11-21 10:40:00",
        "2026-11-21 10:50:00",
    ] {
        change(&pair, 1);
        let out = run_at(&pair, at).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let local = pair.local_snapshots();
        assert_eq!(
            local.len(),
            3,
            "two confirmed and this run's unconfirmed one: {local:?}"
        );
        assert!(
            local.contains(&format!("photos_photos_{}", stamp(at))),
            "{local:?}"
        );
    }
    failing.stop().await;
    pair.restart_receiver(meta, data).await;
    change(&pair, 2);
    let out = run_ok_at(&pair, "2026-11-21 11:00:00").await;
    assert!(
        out.contains("(incremental from photos_photos_20261121T110000Z)"),
        "{out}"
    );
    assert_eq!(pair.local_snapshots().len(), 2);
    assert_same_tree(&pair.share, &pair.latest());
}

/// `2026-11-21 10:10:00` as a snapshot name's stamp.
fn stamp(at: &str) -> String {
    at.replace(['-', ':'], "").replace(' ', "T") + "Z"
}
