//! Logging to the journal, through the real binary and a real systemd-journald:
//! a private one in a mount and pid namespace of the test's own (its socket at
//! /run/systemd/journal/socket on a tmpfs only that namespace sees), read back
//! with `journalctl -o json`.

use std::collections::HashSet;
use std::path::Path;

use ferry::store::{Kind, NewReceive};
use serde_json::Value;

use crate::common::nodes::Nodes;
use crate::common::pair::Pair;

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// Inside the namespaces: a journald of its own, then `$BODY`, then the
/// journal as JSON on stdout. The namespace's pid 1 is this shell, so journald
/// dies with it. `as_systemd_would NAME ARGS...` starts ferry as systemd would
/// (stderr connected to the journal, named by JOURNAL_STREAM), into
/// `$OUT/NAME.{out,err,pid}`; `$STREAM` overrides what JOURNAL_STREAM names.
const SCRIPT: &str = r#"
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
"$JOURNALD" >"$OUT/journald.log" 2>&1 &
n=0; until [ -S /run/systemd/journal/socket ]; do
  n=$((n+1)); [ $n -lt 200 ] || { echo "journald did not start" >&2; cat "$OUT/journald.log" >&2; exit 1; }
  sleep 0.05
done
as_systemd_would() {
  name=$1; shift
  : >"$OUT/$name.err"
  JOURNAL_STREAM="$(stat -L -c %d:%i "${STREAM:-$OUT/$name.err}")" \
    "$FERRY" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
  pid=$!
  echo $pid >"$OUT/$name.pid"
}
eval "$BODY"
journalctl -D /run/log/journal -o json --all --no-pager SYSLOG_IDENTIFIER=ferry
"#;

/// What a run of [`SCRIPT`] left: the journal's entries and the files in `out`.
struct Journal {
    entries: Vec<Value>,
    out: tempfile::TempDir,
}

impl Journal {
    /// The entries of the process started as `name`.
    fn of(&self, name: &str) -> Vec<&Value> {
        let pid = self.file(&format!("{name}.pid"));
        let pid = pid.trim();
        self.entries.iter().filter(|e| e["_PID"] == pid).collect()
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// The entries of `name` whose message contains `needle`.
fn with<'a>(entries: &[&'a Value], needle: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .copied()
        .filter(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(needle)))
        .collect()
}

/// Runs `body` in [`SCRIPT`] with ferry pointed at `state`.
async fn in_private_journal(state: &Path, body: &str) -> Journal {
    assert!(
        Path::new(JOURNALD).exists(),
        "{JOURNALD} is missing: install systemd (`make deps`)"
    );
    let out = tempfile::tempdir().expect("tmp");
    let ran = tokio::process::Command::new("unshare")
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
        .env("BODY", body)
        .env("FERRY", env!("CARGO_BIN_EXE_ferry"))
        .env("OUT", out.path())
        .env("FERRY_STATE_DIR", state)
        .env("FERRY_CONFIG", "/dev/null")
        .env_remove("FERRY_LOG")
        .env_remove("JOURNAL_STREAM")
        .kill_on_drop(true)
        .output()
        .await
        .expect("unshare (util-linux)");
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let entries = String::from_utf8_lossy(&ran.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("journalctl's JSON"))
        .collect();
    Journal { entries, out }
}

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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_journal_with_priorities_and_fields_and_none_is_lost() {
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

    // Started and stopped once ready, twice: as systemd would, then with
    // JOURNAL_STREAM naming another file, as a child whose stderr was
    // redirected sees it.
    let body = r#"
        ready() { n=0; until [ -s "$OUT/$1.out" ]; do
            n=$((n+1)); [ $n -lt 400 ] || { cat "$OUT/$1.err" >&2; exit 1; }; sleep 0.05; done; }
        as_systemd_would journal receiver --listen 127.0.0.1 --meta-port 0 --data-port 0
        ready journal; kill -TERM $pid; wait $pid
        STREAM="$OUT/journal.err" as_systemd_would elsewhere receiver --listen 127.0.0.1 --meta-port 0 --data-port 0
        ready elsewhere; kill -TERM $pid; wait $pid
    "#;
    let log = in_private_journal(&nodes.nas2.state, body).await;
    let journal = log.of("journal");
    let failed = with(&journal, "startup recovery of a replica directory failed");
    assert_eq!(failed.len(), 1, "{journal:?}");
    assert_eq!(failed[0]["PRIORITY"], "3", "{:?}", failed[0]);
    assert_eq!(failed[0]["POOL"], "backup");
    assert_eq!(failed[0]["DIR"], dir.to_string_lossy().as_ref());
    assert!(failed[0]["ERROR"].as_str().is_some_and(|e| !e.is_empty()));

    let strays = with(&journal, "no receive of this receiver made");
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

    let stopped = with(&journal, "receiver stopped");
    assert_eq!(stopped.len(), 1, "{journal:?}");
    assert_eq!(stopped[0]["PRIORITY"], "5");
    assert!(journal.iter().all(|e| e["SYSLOG_IDENTIFIER"] == "ferry"));
    let err = log.file("journal.err");
    assert!(!err.contains("no receive of this receiver made"), "{err}");

    // Not the stream JOURNAL_STREAM names: stderr, one plain line an event.
    assert!(log.of("elsewhere").is_empty(), "{:?}", log.of("elsewhere"));
    let err = log.file("elsewhere.err");
    let lines = err
        .lines()
        .filter(|l| l.contains("no receive of this receiver made"))
        .count();
    assert_eq!(lines, STRAYS, "{err}");
    assert!(!err.contains('\x1b'), "colors on a file: {err}");
}

/// Pins: an event too large for a datagram (a hook's output line of 300 kB)
/// reaches the journal whole (tracing-journald passes it in a memfd), and a
/// run's events carry its fields (`journalctl TASK=photos` finds them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_a_datagram_arrives_whole_with_the_runs_fields() {
    const LONG: usize = 300_000;
    let hook = format!("head -c {LONG} /dev/zero | tr '\\0' x; echo");
    let pair = Pair::new(&["--pre-snapshot", &hook]).await;
    let body = r#"
        FERRY_LOG=info as_systemd_would run task run photos
        wait $pid || { cat "$OUT/run.err" >&2; exit 1; }
    "#;
    let log = in_private_journal(&pair.nas1.state, body).await;
    let run = log.of("run");
    let long: Vec<&&Value> = run.iter().filter(|e| e["STREAM"] == "stdout").collect();
    assert_eq!(long.len(), 1, "{run:?}");
    let message = long[0]["MESSAGE"].as_str().expect("MESSAGE");
    assert_eq!(message.len(), LONG);
    assert!(message.bytes().all(|b| b == b'x'));
    assert_eq!(long[0]["TASK"], "photos");
    assert_eq!(long[0]["HOOK"], "pre-snapshot");
    assert_eq!(long[0]["PRIORITY"], "5");

    let sent = with(&run, "send succeeded");
    assert_eq!(sent.len(), 1, "{run:?}");
    assert_eq!(sent[0]["TASK"], "photos");
    assert_eq!(sent[0]["KIND"], "full");
    let rows = pair.send_rows();
    assert_eq!(sent[0]["SNAPSHOT"], rows[0]["snapshot"]);
    assert_eq!(
        sent[0]["STREAM_BYTES"],
        rows[0]["stream_bytes"].to_string().as_str()
    );
    assert!(log.file("run.err").is_empty(), "{}", log.file("run.err"));
}
