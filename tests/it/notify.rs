//! The daemons' side of systemd's notify protocol, through the real binary, on a
//! NOTIFY_SOCKET this test owns: READY=1 once serving, STATUS=, WATCHDOG=1 while
//! the loop turns, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 at SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::net::UnixDatagram;

use crate::common::ferry::Node;

/// A datagram socket standing in for systemd's.
struct Manager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Manager {
            socket,
            _dir: dir,
            path,
        }
    }

    /// The next notification's lines.
    async fn next(&self) -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), self.socket.recv(&mut buf))
            .await
            .expect("a notification within 10 s")
            .expect("recv");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits for a notification with `line`, skipping watchdog pets and status
    /// updates unless asked for; returns it.
    async fn until(&self, line: &str) -> Vec<String> {
        loop {
            let got = self.next().await;
            if got.iter().any(|l| l == line || l.starts_with(line)) {
                return got;
            }
        }
    }

    /// Notifications within `window`.
    async fn during(&self, window: Duration) -> Vec<Vec<String>> {
        let mut all = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        let mut buf = vec![0u8; 4096];
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await {
            all.push(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned)
                    .collect(),
            );
        }
        all
    }
}

fn spawn(
    node: &Node,
    socket: &Path,
    args: &[&str],
    watchdog_pid: Option<u32>,
) -> tokio::process::Child {
    let mut cmd = node.command(args);
    cmd.env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(pid) = watchdog_pid {
        cmd.env("WATCHDOG_PID", pid.to_string());
    }
    cmd.spawn().expect("spawn ferry")
}

fn signal(child: &tokio::process::Child, sig: Signal) {
    let pid = child.id().expect("running");
    kill(Pid::from_raw(i32::try_from(pid).expect("pid")), sig).expect("kill");
}

async fn exits_0(mut child: tokio::process::Child) {
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within 15 s")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

fn pets(notes: &[Vec<String>]) -> usize {
    notes
        .iter()
        .filter(|n| n.iter().any(|l| l == "WATCHDOG=1"))
        .count()
}

/// The common part: after READY=1, pets while serving, a reload bracketed by
/// RELOADING=1 and READY=1, STOPPING=1 and exit 0 at SIGTERM.
async fn serves_pets_reloads_and_stops(m: &Manager, child: tokio::process::Child) {
    let notes = m.during(Duration::from_millis(1000)).await;
    assert!(
        pets(&notes) >= 3,
        "WATCHDOG=1 every 100 ms expected: {notes:?}"
    );
    signal(&child, Signal::SIGHUP);
    let reloading = m.until("RELOADING=1").await;
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    m.until("READY=1").await;
    signal(&child, Signal::SIGTERM);
    m.until("STOPPING=1").await;
    exits_0(child).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sender_is_ready_once_its_tasks_are_loaded_and_pets_the_watchdog() {
    let node = Node::init("nas1");
    let m = Manager::new();
    let child = spawn(&node, &m.path, &["sender"], None);
    let ready = m.until("READY=1").await;
    assert!(
        ready.contains(&"STATUS=0 task(s) scheduled, 0 send(s) in flight".to_string()),
        "{ready:?}"
    );
    serves_pets_reloads_and_stops(&m, child).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_is_ready_once_its_ports_are_bound_and_pets_the_watchdog() {
    let node = Node::init("nas2");
    let m = Manager::new();
    let args = [
        "receiver",
        "--listen",
        "127.0.0.1",
        "--meta-port",
        "0",
        "--data-port",
        "0",
    ];
    let child = spawn(&node, &m.path, &args, None);
    let ready = m.until("READY=1").await;
    let status = ready
        .iter()
        .find_map(|l| l.strip_prefix("STATUS=listening: meta "))
        .unwrap_or_else(|| panic!("{ready:?}"));
    // Ready means bound: the meta port accepts a connection right away.
    let meta = status.split(',').next().expect("meta address");
    tokio::net::TcpStream::connect(meta)
        .await
        .unwrap_or_else(|e| panic!("connect to {meta} at READY=1: {e}"));
    serves_pets_reloads_and_stops(&m, child).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watchdog_meant_for_another_process_is_not_petted() {
    let node = Node::init("nas1");
    let m = Manager::new();
    // WATCHDOG_PID names the process systemd watches: here, not ferry.
    let child = spawn(&node, &m.path, &["sender"], Some(std::process::id()));
    m.until("READY=1").await;
    let notes = m.during(Duration::from_millis(600)).await;
    assert_eq!(pets(&notes), 0, "{notes:?}");
    signal(&child, Signal::SIGTERM);
    exits_0(child).await;
}
