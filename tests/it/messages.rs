//! Messages that must not mislead, with the real binary where a run is under
//! test: one line for a failed run, a plain reason (no documentation link)
//! that says which side gave up, and one byte count in a failed receive row.

use std::process::Stdio;
use std::time::Duration;

use ferry::store::Status;

use crate::common::pair::Pair;

/// `len` bytes of pseudo-random words: compressible, but slow at high levels.
fn words(len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "ferry", "btrfs", "send", "receive", "pool", "share", "snap", "lag",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 8) as usize].as_bytes());
        out.extend_from_slice(format!(" {} ", x % 1000).as_bytes());
    }
    out
}

/// nas2's receive rows, newest first.
fn receive_rows(pair: &Pair) -> Vec<ferry::store::ReceiveRow> {
    pair.nas2
        .store()
        .receive_history(&ferry::store::ReceiveFilter::default())
        .expect("history")
}

/// Pins: a failed `task run` printed a WARN log line before its `ferry:` line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_run_prints_one_line() {
    let mut pair = Pair::new(&[]).await;
    pair.stop_receiver().await;
    let stderr = pair.run_failed().await;
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("ferry: task photos failed: cannot reach nas2 at 127.0.0.1:"),
        "{stderr}"
    );
}

/// Pins: Ctrl-C during a run left the receiver's row with a rustls
/// documentation URL, and a byte count other than its own `stream_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_run_leaves_plain_reasons_and_one_byte_count() {
    // Text at zstd level 19 streams slowly enough to be interrupted midway.
    let pair = Pair::new(&["--compress", "19"]).await;
    std::fs::write(pair.share.join("words.txt"), words(96 << 20)).expect("write");
    let run = pair
        .nas1
        .command(&["task", "run", "photos"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry task run");
    // Interrupt once the receiver has taken part of the stream.
    let streaming = async {
        loop {
            let rows = receive_rows(&pair);
            if rows
                .first()
                .is_some_and(|r| r.attempt.status == Status::Running && r.attempt.stream_bytes > 0)
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
        .expect("task run ends after Ctrl-C")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert_eq!(pair.send_rows()[0]["error"], "interrupted by shutdown");

    // The receiver parks the broken receive for a resume, or ends it.
    let ended = async {
        loop {
            let row = receive_rows(&pair).remove(0);
            if row.attempt.status != Status::Running || row.parked_until.is_some() {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let row = tokio::time::timeout(Duration::from_secs(30), ended)
        .await
        .expect("the receiver parks or ends the receive");
    let reason = row.attempt.error.clone().unwrap_or_default();
    assert!(!reason.contains("https://"), "{reason}");
    assert!(!reason.contains('\n'), "{reason}");
    // Which side gave up, and the row's own count.
    assert!(reason.starts_with("nas1 closed the"), "{reason}");
    let counted = format!("after {} bytes without a verdict", row.attempt.stream_bytes);
    assert!(
        reason.contains(&counted),
        "{reason} / {}",
        row.attempt.stream_bytes
    );
}
