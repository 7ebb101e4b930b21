//! The receiver with a slow or hung `btrfs receive`: the receiver is given a
//! wrapper script as its btrfs executable, which runs the real one.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::daemon::{subvolumes, Pair};
use ferry::store::Status;
use ferry::wire::{self, Keepalive};

/// After the real `btrfs receive` exits, the wrapper reads `<pool dir>/CONTROL`
/// (the pool's temp dir, four levels above the replica directory):
/// `sleep N` keeps it alive N more seconds, then exits with the real status;
/// `hang N` replaces it with `sleep N` (so killing it kills the sleep).
const CONTROL: &str = "btrfs-receive-then";

/// A `btrfs` wrapper script in this test process's own temp dir, passed to the
/// receiver as its btrfs executable (never through `PATH`, which every test in
/// this binary shares).
fn wrapper() -> PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let real = std::process::Command::new("sh")
            .args(["-c", "command -v btrfs"])
            .output()
            .expect("sh");
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        assert!(!real.is_empty(), "btrfs is not in PATH");
        let bin = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("btrfs-wrapper-{}", std::process::id()));
        std::fs::create_dir_all(&bin).expect("wrapper dir");
        let script = format!(
            "#!/bin/sh\nif [ \"$1\" = receive ]; then\n  for last in \"$@\"; do :; done\n  \
             ctl=\"$last/../../../../{CONTROL}\"\n  {real} \"$@\"; rc=$?\n  \
             if [ -f \"$ctl\" ]; then\n    read what secs < \"$ctl\"\n    \
             if [ \"$what\" = hang ]; then exec sleep \"$secs\"; fi\n    sleep \"$secs\"\n  fi\n  \
             exit $rc\nfi\nexec {real} \"$@\"\n"
        );
        let wrapper = bin.join("btrfs");
        std::fs::write(&wrapper, script).expect("write wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        wrapper
    })
    .clone()
}

/// Keepalive timings of seconds, on both sides, so a test of "the peer would
/// have been declared dead" waits seconds, not the production 30 s.
const SHORT: Keepalive = Keepalive {
    interval: Duration::from_millis(300),
    dead_after: Duration::from_millis(1200),
};

/// Pins: after Commit the receiver stopped reading the meta connection, so a
/// `btrfs receive` slow to exit (or a slow `btrfs subvolume show`) went
/// unanswered and the sender's keepalive declared the receiver dead after 30 s.
#[tokio::test]
async fn a_slow_btrfs_receive_exit_keeps_the_session_alive() {
    let pair = Pair::new();
    // Three times the sender's dead_after: without keepalives from the
    // receiver while it waits, the sender would give it up.
    std::fs::write(pair.dst.dir.join(CONTROL), "sleep 4\n").expect("control");
    let d = pair
        .start(|c| {
            c.btrfs = wrapper();
            c.keepalive = SHORT;
        })
        .await;
    let mut c = pair.client_with(&d, SHORT).await;
    let s1 = pair.snapshot("s1").await;
    let started = Instant::now();
    let got = c
        .replicate("photos", "backup", &s1, None, 5)
        .await
        .expect("Received, after the slow exit");
    assert_eq!(got, s1.uuid);
    assert!(
        started.elapsed() >= 3 * SHORT.dead_after,
        "the wrapper did not slow it down"
    );
    assert_eq!(pair.history()[0].attempt.status, Status::Succeeded);
    drop(c);
    d.stop().await;
}

/// Pins: `rx.finish()` had no bound, so a `btrfs receive` that never exits held
/// the share's lock and a receive slot forever. It is killed after
/// `finish_timeout`, the row fails, its subvolume is deleted, the share is free.
#[tokio::test]
async fn a_btrfs_receive_that_never_exits_is_killed_and_the_share_freed() {
    let pair = Pair::new();
    let control = pair.dst.dir.join(CONTROL);
    std::fs::write(&control, "hang 600\n").expect("control");
    let d = pair
        .start(|c| {
            c.btrfs = wrapper();
            c.finish_timeout = Duration::from_secs(3);
            c.max_receives = 1;
        })
        .await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    let e = c
        .replicate("photos", "backup", &s1, None, 5)
        .await
        .expect_err("a hung btrfs receive must fail the receive");
    let reason = match e {
        wire::Error::Failed { reason, .. } => reason,
        other => panic!("expected Failed, got {other}"),
    };
    assert!(
        reason.contains("btrfs receive did not exit within 3s"),
        "{reason}"
    );
    let row = &pair.history()[0];
    assert_eq!(row.attempt.status, Status::Failed);
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());

    std::fs::remove_file(&control).expect("rm control");
    assert_eq!(
        c.replicate("photos", "backup", &s1, None, 5)
            .await
            .expect("the share and the slot are free again"),
        s1.uuid
    );
    drop(c);
    d.stop().await;
}
