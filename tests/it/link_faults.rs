//! Link faults on a real network path: `ferry receiver` in one network
//! namespace, `ferry task run` in another, a veth pair shaped to 100 Mbit/s
//! between them (`common::netns`), and blackholes, packet loss, a killed
//! sender and a restarted receiver on it. Every replica must verify and equal
//! the share, and the wire must carry one stream plus what a fault lost.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::NamedTempFile;

use crate::common::assert_same_tree;
use crate::common::content::incompressible;
use crate::common::ferry::task_add;
use crate::common::netns::{Link, Side};
use crate::common::nodes::Nodes;
use crate::common::process::Running;

const MIB: u64 = 1 << 20;
/// The share's one file: incompressible, so the stream is its size.
const STREAM: u64 = 64 * MIB;
/// A 64 MiB stream takes about 5.5 s at this rate: long enough to cut it.
const RATE: &str = "100mbit";
/// Keepalives every 3 s (a silent peer is given up after 9 s, a stalled data
/// connection too: well past TCP's retransmission after a 1.5 s blackhole,
/// at about 3 s, on a loaded machine), and runs that keep resuming for 90 s.
const CONFIG: &str = "[receiver]\nkeepalive = \"3s\"\ndata_timeout = \"9s\"\n\
                      [sender]\nkeepalive = \"3s\"\nresume_for = \"90s\"\n";
/// Longest a run may take here, faults included (others build on these CPUs).
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// nas1 in the link's tx namespace sends `photos` (64 MiB, `--compress 0`)
/// to nas2's receiver in the rx namespace.
struct Setup {
    receiver: Option<Running>,
    config: NamedTempFile,
    /// Before `nodes`: its processes die before the pools unmount.
    link: Link,
    nodes: Nodes,
}

impl Setup {
    async fn new() -> Setup {
        let link = Link::new(Some(RATE));
        let nodes = Nodes::with_pool_size(1 << 30);
        let config = NamedTempFile::new().expect("config file");
        std::fs::write(config.path(), CONFIG).expect("write the config");
        let mut setup = Setup {
            receiver: None,
            config,
            link,
            nodes,
        };
        let (meta, data) = setup.start_receiver(0, 0).await;
        let (share, addr) = (setup.nodes.share.clone(), setup.link.rx_addr.to_string());
        let fp = setup.nodes.nas2_fp.to_string();
        let (meta, data) = (meta.to_string(), data.to_string());
        setup.nodes.nas1.ok(&[
            "appliance",
            "add",
            "nas2",
            "--address",
            &addr,
            "--fingerprint",
            &fp,
            "--meta-port",
            &meta,
            "--data-port",
            &data,
        ]);
        let share_s = share.to_str().expect("utf8");
        setup
            .nodes
            .nas1
            .ok(&task_add("photos", share_s, "5m", &["--compress", "0"]));
        incompressible(&share.join("big.bin"), STREAM as usize);
        setup
    }

    /// `ferry receiver` in rx on these ports (0: free ones); returns its ports.
    async fn start_receiver(&mut self, meta: u16, data: u16) -> (u16, u16) {
        let (meta, data) = (meta.to_string(), data.to_string());
        let addr = self.link.rx_addr.to_string();
        let args = [
            "receiver",
            "--listen",
            &addr,
            "--meta-port",
            &meta,
            "--data-port",
            &data,
        ];
        let cmd = self
            .link
            .ferry(Side::Rx, &self.nodes.nas2, self.config.path(), &args);
        let running = Running::start(cmd, "ferry receiver in its namespace").await;
        let ports = ports_of(&running.ready);
        self.receiver = Some(running);
        ports
    }

    /// `ferry task run photos` in tx, started.
    fn spawn_run(&self) -> tokio::process::Child {
        self.link
            .ferry(
                Side::Tx,
                &self.nodes.nas1,
                self.config.path(),
                &["task", "run", "photos"],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start task run")
    }

    /// A run's end, which must be a success.
    async fn succeeded(run: tokio::process::Child) -> String {
        let out = finished(run).await;
        assert!(
            out.status.success(),
            "task run failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sends(&self) -> Vec<Value> {
        rows(
            &self
                .nodes
                .nas1
                .json(&["history", "send", "--json", "--limit", "100"]),
        )
    }

    fn receives(&self) -> Vec<Value> {
        rows(
            &self
                .nodes
                .nas2
                .json(&["history", "receive", "--json", "--limit", "100"]),
        )
    }

    /// Waits until the running send row has streamed `bytes`.
    async fn streamed(&self, bytes: u64) -> u64 {
        let started = Instant::now();
        loop {
            let at = self
                .sends()
                .first()
                .map_or(0, |r| r["stream_bytes"].as_u64().unwrap_or(0));
            if at >= bytes {
                return at;
            }
            assert!(
                started.elapsed() < RUN_LIMIT,
                "the run never streamed {bytes} bytes"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the receiver has parked the newest receive; returns its row.
    async fn parked(&self) -> Value {
        let started = Instant::now();
        loop {
            if let Some(row) = self
                .receives()
                .into_iter()
                .find(|r| !r["parked_until"].is_null())
            {
                return row;
            }
            assert!(
                started.elapsed() < RUN_LIMIT,
                "the receiver never parked the receive"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The replica equals the share; the wire carried one stream plus what
    /// the faults lost, which is printed and checked (see [`Wire`]).
    fn verify(&self, fault: &str) -> Wire {
        let latest = self.nodes.replica_dir().join("latest");
        assert_same_tree(&self.nodes.share, &latest);
        let wire = Wire::of(&self.sends(), &self.receives());
        println!(
            "{fault}: stream {} B, wire {} B over {} send row(s) = {:.3}x the stream; \
             the received chain carried {} B in {} resume(s), the fault lost {} B",
            wire.stream,
            wire.sent,
            wire.rows,
            wire.sent as f64 / wire.stream as f64,
            wire.kept,
            wire.cuts,
            wire.lost()
        );
        assert!(wire.stream >= STREAM, "{wire:?}");
        assert!(
            wire.sent <= wire.stream + wire.stream / 20 + wire.lost(),
            "{fault}: more than one stream (+5%) beyond what was lost: {wire:?}"
        );
        wire
    }
}

/// The bytes of one replication as both histories count them.
#[derive(Debug)]
struct Wire {
    /// The whole stream the succeeded receive completed.
    stream: u64,
    /// What the sender's rows put on the wire, all attempts together.
    sent: u64,
    rows: usize,
    /// What the receives the replica was made of took in: the succeeded one
    /// and the parked ones it resumed.
    kept: u64,
    /// How often the stream was resumed on the way.
    cuts: usize,
}

impl Wire {
    fn of(sends: &[Value], receives: &[Value]) -> Wire {
        let done = receives
            .iter()
            .find(|r| r["status"] == "succeeded")
            .expect("a succeeded receive");
        // The receives the replica was made of: the succeeded one, and back
        // from it each parked one a later one resumed.
        let mut chain = vec![done];
        while let Some(earlier) = receives.iter().find(|r| {
            let last = chain.last().map_or(0, |c| c["id"].as_i64().unwrap_or(0));
            r["error"].as_str().is_some_and(|e| resumed_by(e, last))
        }) {
            chain.push(earlier);
        }
        let kept = chain
            .iter()
            .map(|r| r["wire_bytes"].as_u64().unwrap_or(0))
            .sum();
        Wire {
            // A resumed attempt's row counts the bytes it took in itself.
            stream: done["resumed_from"].as_u64().expect("resumed_from")
                + done["stream_bytes"].as_u64().expect("stream_bytes"),
            sent: sends
                .iter()
                .map(|r| r["wire_bytes"].as_u64().unwrap_or(0))
                .sum(),
            rows: sends.len(),
            kept,
            cuts: chain.len() - 1,
        }
    }

    /// Sent but not part of the replica: in flight when the link broke, or
    /// received by an attempt that was discarded.
    fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.kept)
    }
}

/// Whether a receive row's error says receive `id` resumed it.
fn resumed_by(error: &str, id: i64) -> bool {
    let said = format!("resumed by receive {id}");
    error
        .match_indices(&said)
        .any(|(at, _)| !error[at + said.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Bytes a cut can lose in flight: socket buffers at both ends, the qdiscs,
/// rustls and the chunks queued ahead of the network. Generous.
const IN_FLIGHT: u64 = 32 * MIB;

fn rows(v: &Value) -> Vec<Value> {
    v.as_array().expect("a JSON array").clone()
}

async fn finished(run: tokio::process::Child) -> Output {
    tokio::time::timeout(RUN_LIMIT, run.wait_with_output())
        .await
        .expect("the run ends in time")
        .expect("wait for the run")
}

/// Pins: a blackhole shorter than the keepalive is ridden out by TCP: one
/// attempt, succeeded, from 0, and no more than one stream on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_shorter_than_the_keepalive_is_ridden_out() {
    let s = Setup::new().await;
    let run = s.spawn_run();
    s.streamed(16 * MIB).await;
    s.link.blackhole();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dropped = s.link.dropped(Side::Rx) + s.link.dropped(Side::Tx);
    s.link.heal();
    assert!(dropped > 0, "the blackhole dropped nothing");
    Setup::succeeded(run).await;
    let receives = s.receives();
    assert_eq!(receives.len(), 1, "one attempt: {receives:?}");
    assert_eq!(receives[0]["status"], "succeeded");
    assert_eq!(receives[0]["resumed_from"], 0);
    let wire = s.verify("blackhole of 1.5 s");
    assert!(wire.lost() <= IN_FLIGHT, "{wire:?}");
}

/// Pins: a blackhole longer than the keepalive breaks the session; the
/// receiver parks the receive, the run reconnects when the link is back and
/// resumes where the receiver's copy ends, within `resume_for`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_longer_than_the_keepalive_parks_and_the_run_resumes() {
    let s = Setup::new().await;
    let run = s.spawn_run();
    s.streamed(16 * MIB).await;
    s.link.blackhole();
    let parked = s.parked().await;
    let dropped = s.link.dropped(Side::Rx) + s.link.dropped(Side::Tx);
    s.link.heal();
    assert!(dropped > 0, "the blackhole dropped nothing");
    Setup::succeeded(run).await;
    let receives = s.receives();
    let (done, cut) = (&receives[0], &receives[1]);
    assert_eq!(done["status"], "succeeded", "{receives:?}");
    assert_eq!(done["snapshot"], parked["snapshot"]);
    let from = done["resumed_from"].as_u64().expect("resumed_from");
    assert!(from > 0 && from < STREAM, "{done}");
    assert_eq!(cut["id"], parked["id"]);
    assert_eq!(cut["status"], "failed");
    let sends = s.sends();
    assert_eq!(sends.len(), 1, "one run: {sends:?}");
    let wire = s.verify("blackhole past the keepalive");
    assert!(wire.lost() <= IN_FLIGHT, "{wire:?}");
}

/// Pins: a run over a link that drops 20% of the packets both ways completes
/// (when the losses stall the stream past the keepalive, by resuming; each
/// resume may cost what was in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_losing_a_fifth_of_its_packets_still_delivers() {
    let s = Setup::new().await;
    s.link.lose(20);
    let run = s.spawn_run();
    Setup::succeeded(run).await;
    assert!(s.link.dropped(Side::Rx) > 0, "no packet was lost");
    let wire = s.verify("20% packet loss");
    assert!(
        wire.lost() <= IN_FLIGHT * (wire.cuts.max(1) as u64),
        "{wire:?}"
    );
}

/// Pins: a sending process killed (SIGKILL) at a random point mid-stream
/// leaves a parked receive, and the next run sends the same unconfirmed
/// snapshot again, resuming where the receiver's copy ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_killed_mid_stream_is_resumed_by_the_next_run() {
    let s = Setup::new().await;
    // A point between 8 and 48 MiB, different each time; printed to replay.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let cut = (8 + u64::from(seed % 41)) * MIB;
    println!("killing the sender once it streamed {cut} bytes");
    let mut run = s.spawn_run();
    s.streamed(cut).await;
    run.start_kill().expect("SIGKILL");
    run.wait().await.expect("reaped");
    let parked = s.parked().await;
    let snapshot = parked["snapshot"].clone();

    let out = Setup::succeeded(s.spawn_run()).await;
    let receives = s.receives();
    let done = &receives[0];
    assert_eq!(done["status"], "succeeded", "{receives:?}");
    assert_eq!(done["snapshot"], snapshot, "the same unconfirmed snapshot");
    let from = done["resumed_from"].as_u64().expect("resumed_from");
    assert!(from > 0, "{done}");
    let sends = s.sends();
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert_eq!(sends[0]["status"], "succeeded");
    assert_eq!(sends[0]["snapshot"], snapshot, "{out}");
    assert_eq!(sends[0]["resumed_from"], from);
    assert_eq!(
        sends[1]["status"], "failed",
        "the killed run's row is settled"
    );
    let wire = s.verify("sender killed");
    assert!(wire.lost() <= IN_FLIGHT, "{wire:?}");
}

/// Pins: a receiver restarted while it holds a parked receive discards it
/// (partial deleted, row failed), and the run starts the stream over from 0
/// and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_restarted_mid_stream_discards_the_parked_receive_and_the_run_starts_over() {
    let mut s = Setup::new().await;
    let run = s.spawn_run();
    s.streamed(24 * MIB).await;
    s.link.blackhole();
    let parked = s.parked().await;
    let receiver = s.receiver.take().expect("the receiver");
    let (meta, data) = ports_of(&receiver.ready);
    assert!(receiver.stop().await.success());
    s.start_receiver(meta, data).await;
    s.link.heal();
    Setup::succeeded(run).await;

    let receives = s.receives();
    let done = &receives[0];
    assert_eq!(done["status"], "succeeded", "{receives:?}");
    assert_eq!(done["resumed_from"], 0, "started over");
    let old = receives
        .iter()
        .find(|r| r["id"] == parked["id"])
        .expect("the parked row");
    assert_eq!(old["status"], "failed", "{old}");
    assert!(old["parked_until"].is_null(), "{old}");
    let sends = s.sends();
    assert_eq!(sends[0]["status"], "succeeded", "{sends:?}");
    assert_eq!(sends[0]["resumed_from"], 0);
    let replicas: Vec<String> = crate::common::pair::names_in(&s.nodes.replica_dir())
        .into_iter()
        .filter(|n| n != "latest")
        .collect();
    assert_eq!(replicas.len(), 1, "no partial left: {replicas:?}");
    let wire = s.verify("receiver restarted");
    let discarded = old["wire_bytes"].as_u64().unwrap_or(0);
    assert!(wire.lost() <= discarded + IN_FLIGHT, "{wire:?}");
}

/// The ports of a receiver's readiness line (`listening: meta A:P, data A:Q`).
fn ports_of(ready: &str) -> (u16, u16) {
    let port = |key: &str| -> u16 {
        let at = ready.find(key).expect("the readiness line names the ports");
        let rest = &ready[at + key.len()..];
        let end = rest.find([',', ' ']).unwrap_or(rest.len());
        let addr: std::net::SocketAddr = rest[..end].parse().expect("an address");
        addr.port()
    };
    (port("meta "), port("data "))
}
