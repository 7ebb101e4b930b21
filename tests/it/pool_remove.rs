//! `ferry pool remove` beside a running receiver: refused while a receive into
//! the pool runs, `--force` aborts it cleanly; stale rows of a dead receiver
//! do not block it.

use std::time::Duration;

use ferry::store::Status;
use ferry::wire::{self, Meta};

use crate::common::daemon::{subvolumes, Pair};

/// Pins: `pool remove` during a receive returned 0 and the receive landed in
/// a pool that was no longer registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_remove_is_refused_while_a_receive_runs_and_force_aborts_it_cleanly() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    // All but the end: the receive is in flight.
    let (w, _) = c.all_but_the_end(&s1).await;
    pair.receiving().await;

    let err = pair.nas2.refused(2, &["pool", "remove", "backup"]);
    let expected = format!(
        "ferry: pool backup is receiving share photos snapshot s1 from nas1 right now \
         (ferry receiver, pid {}); remove it once that has ended (`ferry history receive`), \
         or now with --force, which aborts it",
        std::process::id()
    );
    assert_eq!(err, expected);
    assert_eq!(pair.history()[0].attempt.status, Status::Running);

    let out = pair
        .nas2
        .run_async(&["pool", "remove", "backup", "--force"])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("aborted the receive of share photos snapshot s1 from nas1")
            && stdout.contains("removed pool backup"),
        "{stdout}"
    );
    // When --force returns, the receive has ended: row failed, partial gone.
    let row = &pair.history()[0];
    assert_eq!(row.attempt.status, Status::Failed);
    let reason =
        "pool backup was removed from nas2 during the receive (`ferry pool remove --force`)";
    assert_eq!(row.attempt.error.as_deref(), Some(reason));
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());
    // The sender is told at once, and that it need not send the same again.
    let verdict = tokio::time::timeout(Duration::from_secs(5), c.conn().recv_alive())
        .await
        .expect("a verdict");
    match verdict {
        Ok(Meta::Failed(f)) => {
            assert_eq!(f.reason, reason);
            assert!(f.permanent);
        }
        other => panic!("expected failed, got {other:?}"),
    }
    drop(w);
    // The pool is no longer offered.
    let mut c = pair.client(&d).await;
    match c.inventory("photos", "backup").await {
        Err(wire::Error::Refused { busy: false, .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(pair.nas2.ok(&["pool", "list"]).lines().count() <= 1);
    drop(c);
    d.stop().await;
}

/// Rows a crashed receiver left `running` are no receives: with no receiver
/// alive, `pool remove` goes ahead (the next start fails those rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_running_rows_without_a_receiver_do_not_block_pool_remove() {
    let pair = Pair::new();
    pair.sql(
        "INSERT INTO receive_history (source, share, pool, snapshot, status, started_at)
         VALUES ('nas1', 'photos', 'backup', 's1', 'running', '2026-01-01T00:00:00.000Z')",
    );
    let out = pair.nas2.ok(&["pool", "remove", "backup"]);
    assert!(out.contains("removed pool backup"), "{out}");
    assert!(!out.contains("aborted"), "{out}");
}
