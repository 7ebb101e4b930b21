//! `ferry status --check` through the real binary, in each of its four states,
//! on both sides of a real replication.

use std::time::Duration;

use crate::common::ferry::Node;
use crate::common::pair::Pair;

/// Runs `status --check ARGS` on `node`; returns (exit code, stdout lines).
async fn check(node: &Node, args: &[&str]) -> (i32, Vec<String>) {
    let mut all = vec!["status", "--check"];
    all.extend_from_slice(args);
    let out = node.run_async(&all).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty(),
        "a check prints to stdout only: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code().expect("exit code");
    (code, stdout.lines().map(str::to_owned).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_state_has_its_exit_code_summary_problem_lines_and_perfdata() {
    // UNKNOWN: nothing to look at, or a check that was asked wrongly.
    let blank = Node::uninitialized();
    let (code, lines) = check(&blank, &[]).await;
    assert_eq!(code, 3, "{lines:?}");
    assert!(
        lines[0].starts_with("FERRY UNKNOWN - no ferry state in "),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 1);
    let (code, lines) = check(&blank, &["--max-lag", "soon"]).await;
    assert_eq!(code, 3, "{lines:?}");
    assert!(lines[0].starts_with("FERRY UNKNOWN - "), "{lines:?}");
    assert!(lines[0].contains("--max-lag"), "{lines:?}");

    let mut pair = Pair::new(&[]).await;
    // OK after a real run, on both sides.
    pair.run_ok().await;
    let (code, lines) = check(&pair.nas1, &[]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        lines[0],
        "FERRY OK - 1 enabled task(s) within their lag, 0 replica line(s) fresh"
    );
    let perf = lines.last().expect("perfdata");
    assert!(perf.starts_with("| 'photos lag'="), "{perf}");
    // 5m interval: CRITICAL past 2 x 5m + 10m = 1200 s.
    assert!(
        perf.contains("s;;1200;0; 'photos failures'=0;1;;0;"),
        "{perf}"
    );
    let (code, lines) = check(&pair.nas2, &[]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert!(
        lines[0].contains("1 line(s) with one replica not checked"),
        "{lines:?}"
    );

    // CRITICAL: older than --max-lag, on the sender and on the receiver.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (code, lines) = check(&pair.nas1, &["--max-lag", "1s"]).await;
    assert_eq!(code, 2, "{lines:?}");
    assert!(
        lines[0].starts_with("FERRY CRITICAL - photos lag "),
        "{lines:?}"
    );
    assert!(lines[0].ends_with(" > 1s"), "{lines:?}");
    assert!(lines[1].starts_with("CRITICAL: photos lag "), "{lines:?}");
    assert!(lines[1].contains("(last success "), "{lines:?}");
    let (code, lines) = check(&pair.nas2, &["--max-lag", "1s"]).await;
    assert_eq!(code, 2, "{lines:?}");
    assert!(
        lines[0].starts_with("FERRY CRITICAL - nas1/photos@backup newest replica "),
        "{lines:?}"
    );

    // WARNING: the target went away and the run failed.
    pair.stop_receiver().await;
    pair.run_failed().await;
    let (code, lines) = check(&pair.nas1, &[]).await;
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(lines[0], "FERRY WARNING - photos failed 1 time(s) in a row");
    assert!(
        lines[1].starts_with("WARNING: photos failed 1 time(s) in a row: "),
        "{lines:?}"
    );
    assert!(lines[2].contains("'photos failures'=1;1;;0;"), "{lines:?}");
    // Asked to tolerate two failures, it is OK again.
    let (code, _) = check(&pair.nas1, &["--warn-failures", "2"]).await;
    assert_eq!(code, 0);
    // Without --check, status keeps its own exit codes.
    let out = pair.nas1.run_async(&["status"]).await;
    assert_eq!(out.status.code(), Some(0));
    let out = pair.nas1.run_async(&["status", "--max-lag", "1h"]).await;
    assert_eq!(out.status.code(), Some(2), "--max-lag needs --check");
}
