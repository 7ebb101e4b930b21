//! The progress estimate of a running send, through the real binary: `status
//! --json`'s `in_flight.estimate` while a run goes on under a bandwidth limit,
//! and `task run --progress` on a terminal (a pty from `script`).

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::content::incompressible;
use crate::common::pair::Pair;

/// 4 MiB/s: a 12 MiB stream runs for about 3 s, long enough to watch.
const LIMIT: &str = "4MiB";

/// `ferry task run photos --progress` on a pseudo-terminal (`script` gives it
/// one), with status polled while it runs. Returns what the terminal showed
/// and every `in_flight` seen, in order.
async fn run_watched(pair: &Pair) -> (String, Vec<Value>) {
    let command = format!("{} task run photos --progress", env!("CARGO_BIN_EXE_ferry"));
    let run = tokio::process::Command::new("script")
        .args([
            "--quiet",
            "--flush",
            "--return",
            "--command",
            &command,
            "/dev/null",
        ])
        .env("FERRY_STATE_DIR", &pair.nas1.state)
        .env("FERRY_CONFIG", "/dev/null")
        .env_remove("FERRY_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start script (util-linux)");
    let mut seen = Vec::new();
    let out = {
        let collect = async {
            loop {
                let status = pair.nas1.json(&["status", "--json"]);
                let flight = status["tasks"][0]["in_flight"].clone();
                if !flight.is_null() {
                    seen.push(flight);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::select! {
            out = run.wait_with_output() => out,
            () = collect => unreachable!("the watch never ends"),
        }
    }
    .expect("script ends");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "task run failed: {shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (shown, seen)
}

/// The send rows' stream sizes, newest first.
fn streams(pair: &Pair) -> Vec<u64> {
    pair.send_rows()
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["stream_bytes"].as_u64().expect("stream_bytes"))
        .collect()
}

/// Pins: a run with no basis (a full send, quotas off, no earlier full) shows
/// no estimate (`null`) and the spinner of old; an incremental after a similar
/// one shows, while it runs, an estimate from that stream's size, marked as
/// one, never 100%, with an ETA; quotas are never turned on to get a figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_after_a_similar_one_is_estimated_and_a_first_full_is_not() {
    let pair = Pair::new(&["--compress", "0", "--bwlimit", LIMIT]).await;
    incompressible(&pair.share.join("a.bin"), 8 << 20);
    let (shown, seen) = run_watched(&pair).await;
    assert!(!seen.is_empty(), "the run was never seen in flight");
    for f in &seen {
        assert!(f["estimate"].is_null(), "an estimate without a basis: {f}");
    }
    assert!(shown.contains(" sent, "), "the spinner of old: {shown:?}");
    assert!(!shown.contains("estimate"), "{shown:?}");

    // Two similar incrementals: the second is estimated from the first.
    incompressible(&pair.share.join("b.bin"), 12 << 20);
    pair.run_ok().await;
    let basis = streams(&pair)[0];
    incompressible(&pair.share.join("c.bin"), 12 << 20);
    let (shown, seen) = run_watched(&pair).await;
    let estimated: Vec<&Value> = seen.iter().filter(|f| !f["estimate"].is_null()).collect();
    assert!(!estimated.is_empty(), "no estimate while running: {seen:?}");
    for f in &estimated {
        let e = &f["estimate"];
        assert_eq!(e["total_bytes"], basis, "{f}");
        assert_eq!(e["basis"], "last_stream", "{f}");
        let percent = e["percent"].as_u64().expect("percent");
        assert!(percent <= 99, "{f}");
        let done = f["stream_bytes"].as_u64().expect("stream_bytes");
        assert_eq!(percent, (done * 100 / basis).min(99), "{f}");
        // An ETA is whole seconds, never negative: a u64, or null.
        assert!(
            e["eta_seconds"].is_u64() || e["eta_seconds"].is_null(),
            "{f}"
        );
    }
    assert!(
        estimated
            .iter()
            .any(|f| f["estimate"]["eta_seconds"].is_u64()),
        "an ETA once the rate settled: {estimated:?}"
    );
    assert!(shown.contains("(estimate)"), "{shown:?}");
    assert!(shown.contains("ETA ~"), "{shown:?}");
    assert!(shown.contains("% of ~"), "{shown:?}");
    // The recorded figure is what the row expected.
    let rows = pair.send_rows();
    let id = rows[0]["id"].as_i64().expect("id");
    let expected = pair
        .nas1
        .store()
        .send_expected(id)
        .expect("q")
        .expect("recorded");
    assert_eq!(expected.bytes, basis);

    // Quotas stay off: nothing was turned on to find a figure.
    let quota = std::process::Command::new("btrfs")
        .args(["qgroup", "show", "--raw"])
        .arg(&pair.src.mount)
        .output()
        .expect("btrfs qgroup show");
    assert!(!quota.status.success(), "quotas were turned on");
}

/// The referenced bytes of `share`'s qgroup as btrfs-progs reports them.
fn referenced(share: &std::path::Path) -> u64 {
    let out = std::process::Command::new("btrfs")
        .args(["--format", "json", "qgroup", "show", "--raw", "-f"])
        .arg(share)
        .output()
        .expect("btrfs qgroup show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("btrfs's JSON");
    shown["qgroup-show"][0]["referenced"]
        .as_str()
        .and_then(|b| b.parse().ok())
        .expect("referenced bytes")
}

/// Pins: a full send from a share on a pool with quotas on is estimated from
/// the share's referenced bytes, the figure `btrfs qgroup show` gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_send_with_quotas_on_is_estimated_from_the_qgroup() {
    let pair = Pair::new(&["--compress", "0", "--bwlimit", LIMIT]).await;
    crate::common::run(
        "btrfs",
        &[
            "quota".as_ref(),
            "enable".as_ref(),
            pair.src.mount.as_os_str(),
        ],
    );
    incompressible(&pair.share.join("a.bin"), 10 << 20);
    crate::common::run("sync", &[]);
    let figure = referenced(&pair.share);
    assert!(figure >= 10 << 20, "{figure}");
    let (shown, seen) = run_watched(&pair).await;
    let estimated: Vec<&Value> = seen.iter().filter(|f| !f["estimate"].is_null()).collect();
    assert!(!estimated.is_empty(), "no estimate while running: {seen:?}");
    for f in &estimated {
        assert_eq!(f["estimate"]["total_bytes"], figure, "{f}");
        assert_eq!(f["estimate"]["basis"], "referenced", "{f}");
    }
    assert!(shown.contains("(estimate)"), "{shown:?}");
    let rows = pair.send_rows();
    assert_eq!(rows[0]["kind"], "full");
    let id = rows[0]["id"].as_i64().expect("id");
    let expected = pair
        .nas1
        .store()
        .send_expected(id)
        .expect("q")
        .expect("recorded");
    assert_eq!(expected.bytes, figure);
}
