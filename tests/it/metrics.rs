//! Both daemons' `/metrics`, from the real binary after real runs, read by
//! Prometheus's own text parsers (the Python client's), every value held to
//! what the state databases say, and the counters surviving a restart.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use ferry::store::{ReceiveFilter, SendFilter, Status};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

use crate::common::ferry::Node;
use crate::common::{require_root_and_btrfs, TestPool};

/// Debian's python3 (the one `python3-prometheus-client` installs for).
const PYTHON: &str = "/usr/bin/python3";

/// Fetches a URL and parses it with the parser for its format; prints JSON
/// samples `[name, labels, value]`.
const PARSE: &str = r#"
import json, sys, urllib.request
url, fmt = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url)
if fmt == "openmetrics":
    req.add_header("Accept", "application/openmetrics-text; version=1.0.0")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(req, timeout=10) as r:
    ctype = r.headers["Content-Type"]
    body = r.read().decode()
out = []
for family in text_string_to_metric_families(body):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps({"content_type": ctype, "samples": out}))
"#;

/// Samples keyed by name and sorted labels.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

async fn scrape(url: &str, format: &str) -> Samples {
    assert!(
        std::path::Path::new("/usr/lib/python3/dist-packages/prometheus_client/parser.py").exists(),
        "Prometheus's text parser is missing: `apt-get install python3-prometheus-client` \
         (make test does)"
    );
    let out = tokio::process::Command::new(PYTHON)
        .args(["-c", PARSE, url, format])
        .output()
        .await
        .expect("run python3");
    assert!(
        out.status.success(),
        "the {format} parser refused {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("parser output");
    let ctype = v["content_type"].as_str().expect("content type");
    let expected = if format == "openmetrics" {
        "application/openmetrics-text"
    } else {
        "text/plain; version=0.0.4"
    };
    assert!(ctype.starts_with(expected), "{format}: {ctype}");
    let mut samples = Samples::new();
    for s in v["samples"].as_array().expect("samples") {
        let name = s[0].as_str().expect("name").to_string();
        let labels = s[1]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_string()))
            .collect();
        samples.insert((name, labels), s[2].as_f64().expect("value"));
    }
    samples
}

fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    key.sort();
    *samples
        .get(&(name.to_string(), key.clone()))
        .unwrap_or_else(|| panic!("no {name}{key:?} in {samples:#?}"))
}

/// A daemon started from the binary, with the lines it printed at start.
struct Running {
    child: Child,
    lines: Vec<String>,
}

impl Running {
    /// Starts `ferry ARGS` and reads stdout until a line starting with `ready`.
    async fn start(node: &Node, args: &[&str], ready: &str) -> Running {
        let mut child = node
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ferry");
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut lines = Vec::new();
        let read = async {
            while let Some(line) = out.next_line().await.expect("read stdout") {
                let done = line.starts_with(ready);
                lines.push(line);
                if done {
                    return;
                }
            }
            panic!("ferry {args:?} ended before {ready:?}: {lines:?}");
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("started within 20 s");
        Running { child, lines }
    }

    fn url(&self) -> String {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix("ferry metrics: "))
            .unwrap_or_else(|| panic!("no metrics line: {:?}", self.lines))
            .to_string()
    }

    /// The port after `what ` (`meta`, `data`) in the receiver's readiness line.
    fn port(&self, what: &str) -> String {
        let line = self.lines.last().expect("readiness line");
        line.split(&format!("{what} "))
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|addr| addr.rsplit(':').next())
            .unwrap_or_else(|| panic!("no {what} port in {line}"))
            .to_string()
    }

    async fn stop(mut self) {
        let pid = self.child.id().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("stops within 15 s")
            .expect("wait");
        assert!(status.success(), "{status}");
    }
}

fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp() as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn both_endpoints_parse_and_agree_with_the_databases_across_a_restart() {
    require_root_and_btrfs();
    let (src, dst) = (TestPool::new(), TestPool::new());
    let share = src.subvolume("photos");
    std::fs::write(share.join("a.txt"), b"alpha\n").expect("write");
    let (nas1, nas2) = (Node::init("nas1"), Node::init("nas2"));
    nas2.ok(&["pool", "add", "backup", &dst.mount.to_string_lossy()]);
    nas2.ok(&[
        "appliance",
        "add",
        "nas1",
        "--address",
        "127.0.0.1",
        "--fingerprint",
        &nas1.fingerprint(),
    ]);
    let receiver_args = [
        "receiver",
        "--listen",
        "127.0.0.1",
        "--meta-port",
        "0",
        "--data-port",
        "0",
        "--metrics",
        "127.0.0.1:0",
    ];
    let receiver = Running::start(&nas2, &receiver_args, "ferry receiver listening").await;
    let (meta, data) = (receiver.port("meta"), receiver.port("data"));
    nas1.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "127.0.0.1",
        "--fingerprint",
        &nas2.fingerprint(),
        "--meta-port",
        &meta,
        "--data-port",
        &data,
    ]);
    nas1.ok(&[
        "task",
        "add",
        "photos",
        "--share",
        &share.to_string_lossy(),
        "--target",
        "nas2",
        "--pool",
        "backup",
        "--frequency",
        "1h",
        // Two sends of the same share: neither may be skipped as unchanged.
        "--skip-unchanged",
        "off",
    ]);
    for _ in 0..2 {
        let out = nas1.run_async(&["task", "run", "photos"]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Something that is not TLS on the meta port: refused, and counted.
    let mut junk = tokio::net::TcpStream::connect(format!("127.0.0.1:{meta}"))
        .await
        .expect("connect");
    junk.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .await
        .expect("write");
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut junk, &mut sink).await;

    // The receiver, against its database.
    let rx = scrape(&receiver.url(), "text").await;
    let rows = nas2
        .store()
        .receive_history(&ReceiveFilter::default())
        .expect("history");
    let ok_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.attempt.status == Status::Succeeded)
        .collect();
    assert_eq!(ok_rows.len(), 2);
    let line = [("source", "nas1"), ("share", "photos")];
    let with = |extra: (&'static str, &'static str)| {
        let mut l = line.to_vec();
        l.push(extra);
        l
    };
    assert_eq!(
        get(
            &rx,
            "ferry_receive_runs_total",
            &with(("status", "succeeded"))
        ),
        2.0
    );
    let bytes: u64 = rows.iter().map(|r| r.attempt.stream_bytes).sum();
    assert_eq!(
        get(&rx, "ferry_receive_stream_bytes_total", &line),
        bytes as f64
    );
    let newest = nas2.store().newest_replicas().expect("replicas");
    let (replica, count) = &newest[0];
    let pooled = with(("pool", "backup"));
    assert_eq!(get(&rx, "ferry_replicas", &pooled), f64::from(*count));
    assert_eq!(
        get(&rx, "ferry_replica_newest_timestamp_seconds", &pooled),
        unix(replica.received_at)
    );
    assert_eq!(
        get(
            &rx,
            "ferry_receive_refused_total",
            &[("reason", "handshake")]
        ),
        1.0
    );
    assert_eq!(
        get(&rx, "ferry_receive_refused_total", &[("reason", "busy")]),
        0.0
    );
    let seen = get(
        &rx,
        "ferry_peer_last_seen_timestamp_seconds",
        &[("appliance", "nas1")],
    );
    assert!(seen >= unix(ok_rows[0].attempt.started_at), "{seen}");
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("commit", option_env!("FERRY_GIT_COMMIT").unwrap_or("")),
        ("protocol", ferry::wire::PROTOCOL),
    ];
    assert!(rx.keys().any(|(n, l)| n == "ferry_build_info"
        && l.iter().any(|(k, v)| k == "version" && v == build[0].1)
        && l.iter().any(|(k, v)| k == "protocol" && v == build[2].1)));
    // OpenMetrics, as Prometheus asks for it, says the same.
    let om = scrape(&receiver.url(), "openmetrics").await;
    assert_eq!(
        get(
            &om,
            "ferry_receive_runs_total",
            &with(("status", "succeeded"))
        ),
        2.0
    );

    let mut exposed: std::collections::BTreeSet<String> =
        rx.keys().map(|(name, _)| name.clone()).collect();

    // A failed run, then the sender's own endpoint.
    receiver.stop().await;
    let out = nas1.run_async(&["task", "run", "photos"]).await;
    assert_eq!(out.status.code(), Some(1));
    let sender_args = ["sender", "--metrics", "127.0.0.1:0"];
    let mut sender = Running::start(&nas1, &sender_args, "ferry sender running").await;
    for round in 0..2 {
        let tx = scrape(&sender.url(), "text").await;
        exposed.extend(tx.keys().map(|(name, _)| name.clone()));
        let store = nas1.store();
        let rows = store
            .send_history(&SendFilter {
                task: Some("photos"),
                limit: None,
            })
            .expect("history");
        let count = |s: Status| rows.iter().filter(|r| r.attempt.status == s).count() as f64;
        let task = [("task", "photos")];
        let runs = |s: &'static str| get(&tx, "ferry_send_runs_total", &[task[0], ("status", s)]);
        assert_eq!(runs("succeeded"), count(Status::Succeeded), "round {round}");
        assert_eq!(runs("failed"), count(Status::Failed), "round {round}");
        assert_eq!(runs("failed"), 1.0);
        let stream: u64 = rows.iter().map(|r| r.attempt.stream_bytes).sum();
        let wire: u64 = rows.iter().map(|r| r.attempt.wire_bytes).sum();
        assert_eq!(
            get(&tx, "ferry_send_stream_bytes_total", &task),
            stream as f64
        );
        assert_eq!(get(&tx, "ferry_send_wire_bytes_total", &task), wire as f64);
        let health = ferry::health::tasks(&store, chrono::Utc::now()).expect("health");
        let h = &health[0];
        assert_eq!(get(&tx, "ferry_task_failures_in_a_row", &task), 1.0);
        let last = h.last_success.expect("a success");
        assert_eq!(
            get(&tx, "ferry_task_last_success_timestamp_seconds", &task),
            unix(last)
        );
        let lag = get(&tx, "ferry_task_lag_seconds", &task);
        let expected = h.lag_seconds.expect("lag") as f64;
        assert!(
            (lag - expected).abs() <= 2.0,
            "lag {lag}, database says {expected}"
        );
        assert_eq!(
            get(&tx, "ferry_task_next_run_timestamp_seconds", &task),
            unix(h.next_run.expect("next run"))
        );
        assert_eq!(get(&tx, "ferry_send_in_flight_bytes", &task), 0.0);
        assert_eq!(get(&tx, "ferry_task_interval_seconds", &task), 3600.0);
        // The counters come back from the database after a restart.
        sender.stop().await;
        sender = Running::start(&nas1, &sender_args, "ferry sender running").await;
    }
    sender.stop().await;
    // The shipped dashboard and alerts name only metrics the daemons expose.
    for doc in ["docs/grafana-dashboard.json", "docs/prometheus-alerts.yml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(doc);
        let text = std::fs::read_to_string(&path).expect("read doc");
        let named: std::collections::BTreeSet<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ferry_"))
            .collect();
        assert!(!named.is_empty(), "{doc} names no metric");
        for name in named {
            assert!(
                exposed.contains(name),
                "{doc} names {name}, which no daemon exposes"
            );
        }
    }
}
