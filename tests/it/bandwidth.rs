//! Bandwidth limits: a task's own (`--bwlimit`), followed by a running transfer
//! when it changes, and the sender-wide cap of the config file.

use std::time::{Duration, Instant};

use crate::common::content::incompressible;
use crate::common::pair::Pair;

/// Pins: a task's limit paces its stream, and a limit changed while the
/// transfer runs applies within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_limit_paces_its_stream_and_follows_changes() {
    let pair = Pair::new(&["--compress", "0", "--bwlimit", "2MiB"]).await;
    let shown = pair.nas1.json(&["task", "show", "photos", "--json"]);
    assert_eq!(shown["bwlimit"], 2 << 20);
    incompressible(&pair.share.join("a.bin"), 6 << 20);
    let started = Instant::now();
    pair.run_ok().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "6 MiB at 2 MiB/s took {took:?}"
    );

    // 24 MiB more at 1 MiB/s would take 24 s; the limit is lifted after 3 s.
    incompressible(&pair.share.join("b.bin"), 24 << 20);
    let db = rusqlite::Connection::open(pair.nas1.state.join(ferry::store::DB_FILE))
        .expect("open state.db");
    db.execute("UPDATE tasks SET bwlimit = 1048576", [])
        .expect("set limit");
    let started = Instant::now();
    let run = tokio::spawn({
        let cmd = pair.nas1.command(&["task", "run", "photos"]);
        async move {
            let mut cmd = cmd;
            cmd.output().await.expect("run")
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    db.execute("UPDATE tasks SET bwlimit = 0", [])
        .expect("lift limit");
    let out = run.await.expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "the lifted limit did not reach the running transfer: {took:?}"
    );
}

/// Pins: `sender.bwlimit` caps a run whose task has no limit of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_senders_cap_applies_to_every_task() {
    let pair = Pair::new(&["--compress", "0"]).await;
    incompressible(&pair.share.join("a.bin"), 6 << 20);
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(config.path(), "[sender]\nbwlimit = \"2MiB\"\n").expect("write config");
    let started = Instant::now();
    let out = pair
        .nas1
        .command(&["task", "run", "photos"])
        .env("FERRY_CONFIG", config.path())
        .output()
        .await
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "6 MiB at 2 MiB/s took {took:?}"
    );
}
