//! The daemons' log at the default level: ferry's own events, not the cron
//! scheduler crate's bookkeeping ("Uninited", "Job creator created").

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::common::ferry::Node;
use crate::common::process::RECEIVER;

/// Starts `ferry <args>` with the config's default level (no `FERRY_LOG`),
/// waits for its readiness line, stops it, and returns all it logged.
async fn default_log(node: &Node, args: &[&str]) -> String {
    let mut child = node
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a readiness line within 20 s")
        .expect("read stdout")
        .expect("a readiness line");
    // The housekeeping jobs are registered by now; let any late line land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().expect("pid")).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .await
        .expect("read stderr");
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .expect("wait");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_level_leaves_out_the_cron_crates_chatter() {
    let node = Node::init("nas1");
    for args in [RECEIVER, &["sender"]] {
        let log = default_log(&node, args).await;
        assert!(
            !log.contains("tokio_cron_scheduler"),
            "ferry {args:?} logged: {log}"
        );
        // The filter still passes ferry's own info events.
        assert!(log.contains("INFO ferry::"), "ferry {args:?} logged: {log}");
    }
}
