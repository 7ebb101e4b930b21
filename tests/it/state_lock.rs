//! One daemon of each kind per state directory, with the real binary: a second
//! `ferry receiver` or `ferry sender` exits 1 at once naming the first one's pid,
//! changes nothing, and the CLI keeps working beside a running daemon.

use std::time::{Duration, Instant};

use ferry::store::Status;

use crate::common::daemon::Pair;
use crate::common::ferry::Node;
use crate::common::process::RECEIVER;

/// The one line a second daemon prints, for a first one with `pid` on `node`.
fn held(node: &Node, daemon: &str, pid: u32) -> String {
    format!(
        "ferry: another ferry {daemon} (pid {pid}) uses {}; stop it first, or give this one \
         another --state-dir",
        node.state.display()
    )
}

/// Runs a second daemon that must exit 1 within 5 s with exactly `line` and
/// leave the database as it was.
async fn refused_at_once(node: &Node, args: &[&str], line: &str) {
    let before = node.dump();
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(5), node.run_async(args))
        .await
        .unwrap_or_else(|_| panic!("ferry {args:?} did not exit within 5 s"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "ferry {args:?}: {stderr}");
    assert_eq!(stderr.trim_end(), line);
    assert!(out.stdout.is_empty(), "no readiness line");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(node.dump(), before, "ferry {args:?} changed the database");
}

/// The CLI reads and writes beside a running daemon.
async fn cli_works(node: &Node) {
    for args in [
        &["appliance", "list"][..],
        &["pool", "list", "--json"],
        &["history", "receive"],
        &["history", "send"],
        &["status"],
        &["id"],
    ] {
        let out = node.run_async(args).await;
        assert!(
            out.status.success(),
            "ferry {args:?} beside a daemon: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Pins: a second receiver on the same state dir started, failed the first
/// one's running receive, deleted its partial and broke its transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_receiver_exits_1_at_once_and_the_first_ones_receive_goes_on() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    let (mut w, tail) = c.all_but_the_end(&s1).await;
    pair.receiving().await;

    // This test process is the first receiver.
    let line = held(&pair.nas2, "receiver", std::process::id());
    refused_at_once(&pair.nas2, RECEIVER, &line).await;
    cli_works(&pair.nas2).await;

    w.write_chunk(&tail).await.expect("chunk");
    let stats = w.finish().await.expect("end");
    let got = c
        .commit(stats.end - stats.start, &stats.blake3)
        .await
        .expect("the first receiver's receive succeeds");
    assert_eq!(got, s1.uuid);
    assert_eq!(pair.history()[0].attempt.status, Status::Succeeded);
    drop(c);
    d.stop().await;
}

/// The kernel drops the lock of a daemon that died, so a crash leaves nothing
/// to clean up: the next receiver starts although the lock file names a dead pid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_receiver_leaves_no_lock_behind() {
    let node = Node::init("nas2");
    let first = node.daemon(RECEIVER).await;
    let line = held(&node, "receiver", first.pid());
    refused_at_once(&node, RECEIVER, &line).await;
    first.crash().await;
    let next = node.daemon(RECEIVER).await;
    assert!(next.ready.contains("listening"), "{}", next.ready);
    let status = next.stop().await;
    assert!(status.success(), "{status:?}");
}

/// The scheduler has its own lock: a second `ferry sender` is refused, while a
/// receiver on the same state dir (an appliance that sends and receives) runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sender_exits_1_and_a_receiver_shares_the_state_dir() {
    let node = Node::init("nas1");
    let sender = node.daemon(&["sender"]).await;
    assert!(
        sender.ready.starts_with("ferry sender running"),
        "{}",
        sender.ready
    );
    let line = held(&node, "sender", sender.pid());
    refused_at_once(&node, &["sender"], &line).await;
    let receiver = node.daemon(RECEIVER).await;
    cli_works(&node).await;
    node.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "127.0.0.1",
        "--fingerprint",
        &format!("SHA256:{}", "ab".repeat(32)),
    ]);
    assert!(receiver.stop().await.success());
    assert!(sender.stop().await.success());
    // Both locks are free again.
    let again = node.daemon(&["sender"]).await;
    assert!(again.stop().await.success());
}
