//! Logging to the journal, through the real binary and a real systemd-journald:
//! a private one in a mount and pid namespace of the test's own (its socket at
//! /run/systemd/journal/socket on a tmpfs only that namespace sees), read back
//! with `journalctl -o json`.

use std::collections::HashSet;
use std::path::Path;

use ferry::store::{Kind, NewReceive};
use serde_json::Value;

use crate::common::nodes::Nodes;

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// Inside the namespaces: a journald of its own, `ferry receiver` started as
/// systemd would start it (stderr connected to the journal, named by
/// JOURNAL_STREAM) and stopped once ready, then again with JOURNAL_STREAM
/// naming another file (as a child whose stderr was redirected sees it);
/// then the journal as JSON on stdout. The namespace's pid 1 is this shell,
/// so journald dies with it.
const SCRIPT: &str = r#"
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
"$JOURNALD" >"$OUT/journald.log" 2>&1 &
n=0; until [ -S /run/systemd/journal/socket ]; do
  n=$((n+1)); [ $n -lt 200 ] || { echo "journald did not start" >&2; cat "$OUT/journald.log" >&2; exit 1; }
  sleep 0.05
done
receiver() {
  "$FERRY" receiver --listen 127.0.0.1 --meta-port 0 --data-port 0 >"$OUT/$1.out" 2>"$OUT/$1.err" &
  pid=$!
  n=0; until [ -s "$OUT/$1.out" ]; do
    n=$((n+1)); [ $n -lt 400 ] || { echo "ferry receiver not ready" >&2; cat "$OUT/$1.err" >&2; exit 1; }
    sleep 0.05
  done
  kill -TERM $pid; wait $pid
  echo $pid >"$OUT/$1.pid"
}
: >"$OUT/journal.err"
JOURNAL_STREAM="$(stat -L -c %d:%i "$OUT/journal.err")" receiver journal
: >"$OUT/elsewhere.err"
JOURNAL_STREAM="$(stat -L -c %d:%i "$OUT/journal.err")" receiver elsewhere
journalctl -D /run/log/journal -o json --no-pager SYSLOG_IDENTIFIER=ferry
"#;

/// `btrfs subvolume create` at `path`.
fn subvolume(path: &Path) {
    crate::common::run(
        "btrfs",
        &["subvolume".as_ref(), "create".as_ref(), path.as_os_str()],
    );
}

/// Pins: under JOURNAL_STREAM, events reach journald with their syslog
/// priority (error 3, warning 4, info 5), `SYSLOG_IDENTIFIER=ferry` and each
/// field as a journal field; a burst of warnings arrives whole, in order; a
/// process whose stderr is not the stream JOURNAL_STREAM names logs to stderr.
#[test]
fn events_reach_the_journal_with_priorities_and_fields_and_none_is_lost() {
    crate::common::require_root_and_btrfs();
    assert!(
        Path::new(JOURNALD).exists(),
        "{JOURNALD} is missing: install systemd (`make deps`)"
    );
    let nodes = Nodes::new();
    let source = uuid::Uuid::new_v4();
    let dir = nodes
        .dst
        .mount
        .join(".ferry")
        .join(source.to_string())
        .join("photos");
    std::fs::create_dir_all(&dir).expect("replica dir");
    // Subvolumes no receive made: a warning each, left alone. Recovery goes
    // by name, so these come before the partial below.
    const STRAYS: usize = 300;
    for i in 0..STRAYS {
        subvolume(&dir.join(format!("a-stray-{i:03}")));
    }
    // A partial of a receive this receiver recorded, which cannot be deleted
    // (a subvolume inside it): startup recovery fails on it, an error.
    let partial = dir.join("photos_photos_20261130T000000Z");
    subvolume(&partial);
    subvolume(&partial.join("inner"));
    nodes
        .nas2
        .store()
        .begin_receive(&NewReceive {
            source: "nas1",
            source_uuid: Some(source),
            share: "photos",
            pool: "backup",
            snapshot: "photos_photos_20261130T000000Z",
            parent: None,
            kind: Kind::Full,
        })
        .expect("receive row");

    let out = tempfile::tempdir().expect("tmp");
    let ran = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .args(["sh", "-c", SCRIPT])
        .env("JOURNALD", JOURNALD)
        .env("FERRY", env!("CARGO_BIN_EXE_ferry"))
        .env("OUT", out.path())
        .env("FERRY_STATE_DIR", &nodes.nas2.state)
        .env("FERRY_CONFIG", "/dev/null")
        .env_remove("FERRY_LOG")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("unshare (util-linux)");
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let pid = |run: &str| {
        std::fs::read_to_string(out.path().join(format!("{run}.pid")))
            .expect("pid")
            .trim()
            .to_string()
    };
    let entries: Vec<Value> = String::from_utf8_lossy(&ran.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("journalctl's JSON"))
        .collect();
    let of = |run: &str| -> Vec<&Value> {
        let pid = pid(run);
        entries
            .iter()
            .filter(|e| e["_PID"] == pid.as_str())
            .collect()
    };
    let journal = of("journal");
    let with = |needle: &str| -> Vec<&Value> {
        journal
            .iter()
            .copied()
            .filter(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(needle)))
            .collect()
    };

    let failed = with("startup recovery of a replica directory failed");
    assert_eq!(failed.len(), 1, "{journal:?}");
    assert_eq!(failed[0]["PRIORITY"], "3", "{:?}", failed[0]);
    assert_eq!(failed[0]["POOL"], "backup");
    assert_eq!(failed[0]["DIR"], dir.to_string_lossy().as_ref());
    assert!(failed[0]["ERROR"].as_str().is_some_and(|e| !e.is_empty()));

    let strays = with("no receive of this receiver made");
    assert_eq!(strays.len(), STRAYS, "warnings were lost");
    let named: Vec<&str> = strays
        .iter()
        .map(|e| e["SUBVOLUME"].as_str().expect("SUBVOLUME field"))
        .collect();
    let expected: Vec<String> = (0..STRAYS).map(|i| format!("a-stray-{i:03}")).collect();
    assert_eq!(
        named.iter().copied().collect::<HashSet<_>>(),
        expected.iter().map(String::as_str).collect::<HashSet<_>>()
    );
    assert!(strays.iter().all(|e| e["PRIORITY"] == "4"));

    let stopped = with("receiver stopped");
    assert_eq!(stopped.len(), 1, "{journal:?}");
    assert_eq!(stopped[0]["PRIORITY"], "5");
    assert!(journal.iter().all(|e| e["SYSLOG_IDENTIFIER"] == "ferry"));
    let err = std::fs::read_to_string(out.path().join("journal.err")).expect("stderr");
    assert!(!err.contains("no receive of this receiver made"), "{err}");

    // Not the stream JOURNAL_STREAM names: stderr, one plain line an event.
    assert!(of("elsewhere").is_empty(), "{:?}", of("elsewhere"));
    let err = std::fs::read_to_string(out.path().join("elsewhere.err")).expect("stderr");
    let lines = err
        .lines()
        .filter(|l| l.contains("no receive of this receiver made"))
        .count();
    assert_eq!(lines, STRAYS, "{err}");
    assert!(!err.contains('\x1b'), "colors on a file: {err}");
}
