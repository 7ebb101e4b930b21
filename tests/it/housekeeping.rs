//! The daemons' housekeeping jobs on tokio-cron-scheduler, on a short cron
//! expression and real waits of a few seconds: the receiver's audit forgets a
//! replica deleted by hand and repairs `latest`; history retention deletes old
//! rows but never a task's newest or a held snapshot's confirmation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ferry::config::SenderSettings;
use ferry::housekeeping::Retention;
use ferry::sender::{Daemon, DaemonConfig, ManualClock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::common::daemon::Pair as Receivers;
use crate::common::pair::Pair;

/// Every second: the shortest schedule the job scheduler has.
const EVERY_SECOND: &str = "* * * * * *";

/// Polls `done` every 100 ms for up to 10 s.
async fn within_seconds(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not happen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_forgets_a_replica_deleted_by_hand_and_repairs_latest() {
    let pair = Receivers::new();
    let (_s1, _s2) = pair.two_replicas().await;
    assert_eq!(pair.latest(), "s2");
    let d = pair
        .start(|c| c.audit = Some(EVERY_SECOND.to_string()))
        .await;
    // Deleted by hand while nobody sends: no Inventory will notice.
    let out = std::process::Command::new("btrfs")
        .args(["subvolume", "delete"])
        .arg(pair.replica_dir().join("s2"))
        .output()
        .expect("btrfs");
    assert!(out.status.success(), "{out:?}");
    let replicas = || {
        pair.nas2
            .store()
            .pool_replicas("backup")
            .expect("replicas")
            .into_iter()
            .map(|r| r.snapshot)
            .collect::<Vec<_>>()
    };
    within_seconds("the audit", || replicas() == ["s1"]).await;
    within_seconds("the latest repair", || pair.latest() == "s1").await;
    d.stop().await;
}

fn count(node: &crate::common::ferry::Node, table: &str) -> i64 {
    let db = rusqlite::Connection::open(node.state.join(ferry::store::DB_FILE)).expect("open");
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

fn sql(node: &crate::common::ferry::Node, statement: &str) {
    let db = rusqlite::Connection::open(node.state.join(ferry::store::DB_FILE)).expect("open");
    db.execute_batch(statement).expect(statement);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_retention_keeps_each_tasks_newest_row_and_held_confirmations() {
    // Two sends of one share: the second must not be skipped as unchanged.
    let mut pair = Pair::new(&["--skip-unchanged", "off"]).await;
    crate::common::content::populate(&pair.share);
    pair.run_ok().await; // confirms a snapshot that stays on disk
    pair.run_ok().await;
    let held = pair.local_snapshots();
    // Old history: failures from long ago, one still running, all of it aged.
    sql(
        &pair.nas1,
        "INSERT INTO send_history (task, target, share, status, error, started_at)
         VALUES ('photos', 'nas2', 'photos', 'failed', 'x', '2001-01-01T00:00:00.000Z'),
                ('photos', 'nas2', 'photos', 'failed', 'x', '2001-01-02T00:00:00.000Z'),
                ('gone', 'nas2', 'gone', 'running', NULL, '2001-01-03T00:00:00.000Z');
         UPDATE send_history SET started_at = '2002-01-01T00:00:00.000Z';",
    );
    sql(
        &pair.nas2,
        "UPDATE receive_history SET started_at = '2002-01-01T00:00:00.000Z';",
    );
    assert_eq!(count(&pair.nas1, "send_history"), 5);
    assert_eq!(count(&pair.nas2, "receive_history"), 2);

    // The receiver, restarted with retention every second.
    let (meta, data) = pair.stop_receiver().await;
    pair.receiver = Some(
        crate::common::daemon::Daemon::start(&pair.nas2.state, |c| {
            c.meta_port = meta.port();
            c.data_port = data.port();
            c.history = Some(Retention {
                cron: EVERY_SECOND.to_string(),
                keep_days: 30,
            });
        })
        .await,
    );
    // The sender, with retention every second (the task is disabled: its
    // aged rows would make it due at once).
    pair.nas1.ok(&["task", "disable", "photos"]);
    let mut config = DaemonConfig::new(pair.nas1.state.clone(), SenderSettings::default());
    config.clock = Arc::new(ManualClock::new(Utc::now()));
    config.history = Some(Retention {
        cron: EVERY_SECOND.to_string(),
        keep_days: 30,
    });
    let shutdown = CancellationToken::new();
    let (_keep, settings) = watch::channel(SenderSettings::default());
    let handle = tokio::spawn(Daemon::new(config).run(shutdown.clone(), settings));

    // Left: task gone's only row (a dead run's, failed at the sender's
    // start; a running row is never deleted, src/store/prune.rs), photos'
    // newest row (the second failure), and both successes, whose snapshots
    // are still held; gone: the first failure.
    within_seconds("send history retention", || {
        count(&pair.nas1, "send_history") == 4
    })
    .await;
    within_seconds("receive history retention", || {
        count(&pair.nas2, "receive_history") == 1
    })
    .await;
    let rows = pair.send_rows();
    let kept: Vec<(&str, &str, Option<&str>)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["task"].as_str().expect("task"),
                r["status"].as_str().expect("status"),
                r["snapshot"].as_str(),
            )
        })
        .collect();
    assert!(kept.iter().any(|(task, _, _)| *task == "gone"), "{kept:?}");
    assert_eq!(
        kept.iter()
            .filter(|(task, status, _)| *task == "photos" && *status == "failed")
            .count(),
        1,
        "{kept:?}"
    );
    for snapshot in &held {
        assert!(
            kept.contains(&("photos", "succeeded", Some(snapshot.as_str()))),
            "the confirmation of held {snapshot} went: {kept:?}"
        );
    }
    shutdown.cancel();
    handle
        .await
        .expect("join")
        .expect("the sender stopped cleanly");
}
