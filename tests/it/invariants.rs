//! Invariants of docs/design.md that no other test pinned: what a receiver does
//! with a stream that is not what Begin announced, with paths planted in its
//! replica directories, with its `latest` link, with a busy database; and what
//! `ferry task run` does with rows a dead run left behind.

use std::time::{Duration, Instant};

use crate::common::client::{self, stream_snapshot};
use crate::common::daemon::{subvolumes, Pair};
use crate::common::pair;
use ferry::store::{NewSend, SendFilter, Status};
use ferry::wire;

/// Pins: the receiver checks that the subvolume the stream made is the one
/// Begin announced, by name and by received_uuid; either mismatch fails the
/// receive as permanent (the same stream would fail the same way), and leaves
/// nothing behind.
#[tokio::test]
async fn a_stream_that_is_not_the_announced_snapshot_is_rejected_as_permanent() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let (s1, s2) = (pair.snapshot("s1").await, pair.snapshot("s2").await);

    // Announced s2, streamed s1.
    let session = c
        .begin("photos", "backup", &s2, None, 5)
        .await
        .expect("ready");
    let stats = stream_snapshot(c.open_data(session).await, &s1.path, None).await;
    match c.commit(stats.end - stats.start, &stats.blake3).await {
        Err(wire::Error::Failed {
            reason,
            permanent: true,
        }) => assert!(
            reason.contains("the stream carried subvolume \"s1\", but Begin named s2"),
            "{reason}"
        ),
        other => panic!("expected a permanent failure, got {other:?}"),
    }

    // Announced s1 under another uuid than the one the stream carries.
    let mut begin = client::begin("photos", "backup", &s1, None, 5);
    begin.snapshot_uuid = uuid::Uuid::new_v4();
    let announced = begin.snapshot_uuid;
    let ready = c.wire.begin(begin).await.expect("ready");
    let stats = stream_snapshot(c.open_data(ready.session).await, &s1.path, None).await;
    match c.commit(stats.end - stats.start, &stats.blake3).await {
        Err(wire::Error::Failed {
            reason,
            permanent: true,
        }) => assert_eq!(
            reason,
            format!("received_uuid is {}, expected {announced}", s1.uuid)
        ),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());
    assert!(pair
        .history()
        .iter()
        .all(|r| r.attempt.status == Status::Failed));
    // The session and the share are free for the right stream.
    c.replicate_full(&pair.snapshot("s3").await).await;
    drop(c);
    d.stop().await;
}

/// Pins: a symlink planted where a replica directory goes is not followed, and
/// a file planted under a snapshot's name is not overwritten; both refuse the
/// receive with the reason, and what was planted is untouched.
#[tokio::test]
async fn paths_planted_in_a_replica_directory_are_neither_followed_nor_overwritten() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;

    // `.ferry/<source uuid>` is a symlink to a directory elsewhere in the pool.
    let elsewhere = pair.dst.mount.join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let source_dir = pair
        .replica_dir()
        .parent()
        .expect("source dir")
        .to_path_buf();
    std::fs::create_dir_all(source_dir.parent().expect(".ferry")).expect("mkdir .ferry");
    std::os::unix::fs::symlink(&elsewhere, &source_dir).expect("plant symlink");
    match c.replicate("photos", "backup", &s1, None, 5).await {
        Err(wire::Error::Refused { reason, .. }) => {
            assert!(
                reason.contains("a symlink or file is in the way"),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(&elsewhere).expect("ls").count(), 0);
    std::fs::remove_file(&source_dir).expect("remove the planted link");

    // A plain file under the name of the snapshot about to be received.
    std::fs::create_dir_all(pair.replica_dir()).expect("mkdir");
    let planted = pair.replica_dir().join("s1");
    std::fs::write(&planted, b"mine\n").expect("plant file");
    match c.replicate("photos", "backup", &s1, None, 5).await {
        Err(wire::Error::Refused { reason, .. }) => {
            assert!(reason.contains("already exists"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read(&planted).expect("read"), b"mine\n");
    drop(c);
    d.stop().await;
}

/// Pins: a temporary `latest` link a crash left behind is swept at start, and
/// `latest` still names the newest replica.
#[tokio::test]
async fn a_temporary_latest_link_left_by_a_crash_is_swept() {
    let pair = Pair::new();
    let (_s1, s2) = pair.two_replicas().await;
    let stray = pair.replica_dir().join(".latest.tmp-0123456789abcdef");
    std::os::unix::fs::symlink("s1", &stray).expect("plant tmp link");
    let d = pair.start(|_| {}).await;
    assert!(std::fs::symlink_metadata(&stray).is_err(), "swept");
    assert_eq!(pair.latest(), s2.name);
    d.stop().await;
}

/// Pins: a state database another process holds locked is "try again later"
/// (a busy refusal), never a refusal the sender would wait a whole interval on.
#[tokio::test]
async fn a_busy_state_database_is_a_busy_refusal() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    let db = rusqlite::Connection::open(pair.nas2.state.join(ferry::store::DB_FILE))
        .expect("open state.db");
    db.execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the database");
    let started = Instant::now();
    match c.begin("photos", "backup", &s1, None, 5).await {
        Err(e @ wire::Error::Refused { busy: true, .. }) => {
            assert!(e.is_temporary());
            assert!(e.to_string().contains("state database"), "{e}");
        }
        other => panic!("expected a busy refusal, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    db.execute_batch("ROLLBACK").expect("unlock");
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());
    c.replicate_full(&s1).await;
    drop(c);
    d.stop().await;
}

/// Pins: `ferry task run` fails the rows a dead run of the same task left
/// `running` (it holds the task's lock, so their run is gone), and only those.
#[tokio::test]
async fn task_run_fails_rows_a_dead_run_of_the_same_task_left_running() {
    let pair = pair::Pair::new(&[]).await;
    let store = pair.nas1.store();
    let dead = |task: &str| {
        store
            .begin_send(&NewSend {
                task_id: None,
                task,
                target: "nas2",
                share: "photos",
            })
            .expect("running row")
    };
    let (ours, other) = (dead("photos"), dead("another"));
    pair.run_ok().await;
    let rows = store.send_history(&SendFilter::default()).expect("history");
    let row = |id| rows.iter().find(|r| r.id == id).expect("row");
    assert_eq!(row(ours).attempt.status, Status::Failed);
    assert_eq!(
        row(ours).attempt.error.as_deref(),
        Some("interrupted: the sending process stopped before this run finished")
    );
    assert_eq!(
        row(other).attempt.status,
        Status::Running,
        "another task's row"
    );
}
