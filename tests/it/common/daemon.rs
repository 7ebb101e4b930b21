//! An in-process receiver on 127.0.0.1, the receiver tests' `Pair` around it (two
//! appliances from `nodes`), and a log capture that tests can await instead of sleeping.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ferry::btrfs::{self, Subvolume};
use ferry::receiver::{self, Config, Receiver, Shared};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use super::client::Client;
use super::nodes::Nodes;

/// The receiver under test: nas1 and nas2 as [`Nodes`] pairs them, nas2's
/// receiver started in this process per test, and a scripted client as nas1.
pub struct Pair {
    /// Where [`Pair::snapshot`] puts nas1's snapshots.
    pub snaps: PathBuf,
    nodes: Nodes,
}

impl Deref for Pair {
    type Target = Nodes;

    fn deref(&self) -> &Nodes {
        &self.nodes
    }
}

/// A receiver holding replica `s1` (full, keep 5) of nas1's `photos`, and the
/// client that sent it, still connected: where most receiver tests start.
pub struct FirstReplica {
    pub daemon: Daemon,
    pub client: Client,
    pub s1: Subvolume,
}

impl Pair {
    pub fn new() -> Pair {
        let nodes = Nodes::new();
        let snaps = nodes.src.mount.join("snaps");
        std::fs::create_dir(&snaps).expect("snaps dir");
        Pair { snaps, nodes }
    }

    /// A read-only snapshot of the share named `name`, after writing `name.txt` into it.
    pub async fn snapshot(&self, name: &str) -> Subvolume {
        std::fs::write(self.share.join(format!("{name}.txt")), name).expect("write");
        btrfs::snapshot_readonly(&self.share, &self.snaps.join(name))
            .await
            .expect("snapshot")
    }

    pub async fn start(&self, tweak: impl FnOnce(&mut Config)) -> Daemon {
        Daemon::start(&self.nas2.state, tweak).await
    }

    /// A receiver (with `tweak`) that took snapshot `s1` in full from a client
    /// that stays connected.
    pub async fn first_replica_with(&self, tweak: impl FnOnce(&mut Config)) -> FirstReplica {
        let daemon = self.start(tweak).await;
        let mut client = self.client(&daemon).await;
        let s1 = self.snapshot("s1").await;
        client
            .replicate("photos", "backup", &s1, None, 5)
            .await
            .expect("the first replica, s1");
        FirstReplica { daemon, client, s1 }
    }

    /// [`Pair::first_replica_with`] a receiver of the default configuration.
    pub async fn first_replica(&self) -> FirstReplica {
        self.first_replica_with(|_| {}).await
    }

    /// Replicas s1 (full) and s2 (incremental) received by a daemon that is
    /// then stopped: the state recovery and pool tests start from.
    pub async fn two_replicas(&self) -> (Subvolume, Subvolume) {
        let FirstReplica {
            daemon,
            client: mut c,
            s1,
        } = self.first_replica().await;
        let s2 = self.snapshot("s2").await;
        c.replicate("photos", "backup", &s2, Some(&s1), 5)
            .await
            .expect("s2");
        drop(c);
        daemon.stop().await;
        (s1, s2)
    }

    /// A new client replicates a fresh snapshot `s1` in full: the receiver is
    /// (still) serving after whatever the test did to it.
    pub async fn assert_serving(&self, d: &Daemon) {
        let mut c = self.client(d).await;
        let s1 = self.snapshot("s1").await;
        c.replicate_full(&s1).await;
    }

    pub async fn client(&self, d: &Daemon) -> Client {
        self.client_with(d, ferry::wire::Keepalive::DEFAULT).await
    }

    /// A client whose side of the keepalive has `keepalive`'s timings.
    pub async fn client_with(&self, d: &Daemon, keepalive: ferry::wire::Keepalive) -> Client {
        Client::connect_with(&self.peer, self.nas2_fp, d.meta, d.data, keepalive)
            .await
            .unwrap_or_else(|(addr, e)| panic!("client from {addr}: {e}"))
    }
}

pub struct Daemon {
    pub meta: SocketAddr,
    pub data: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), receiver::Error>>>,
}

impl Daemon {
    pub async fn start(state: &Path, tweak: impl FnOnce(&mut Config)) -> Daemon {
        capture_logs();
        let mut config = Config::new(state);
        config.listen = IpAddr::V4(Ipv4Addr::LOCALHOST);
        config.meta_port = 0;
        config.data_port = 0;
        tweak(&mut config);
        // Fixed ports are a restarted receiver's, just let go of: see `rebind`.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let r = loop {
            match Receiver::bind(config.clone()).await {
                Ok(r) => break r,
                Err(receiver::Error::Bind { source, .. })
                    if source.kind() == std::io::ErrorKind::AddrInUse
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("bind the receiver: {e}"),
            }
        };
        let (meta, data, shared) = (r.meta_addr(), r.data_addr(), r.shared());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(r.serve(async move {
            let _ = stopped.await;
        }));
        Daemon {
            meta,
            data,
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Shuts down and waits; must return within a few seconds.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(8), task)
                .await
                .expect("the receiver stops within 8 s")
                .expect("receiver task")
                .expect("serve returns Ok");
        }
    }
}

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static LOGGED: OnceLock<Notify> = OnceLock::new();

fn logged() -> &'static Notify {
    LOGGED.get_or_init(Notify::new)
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        // Through eprint so the test harness shows it only for failing tests.
        eprint!("{}", String::from_utf8_lossy(buf));
        logged().notify_waiters();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log line of this test process to a buffer (and stderr).
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("ferry=debug")
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
}

pub fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Whether `line` holds `needle` not followed by more of a name: the log is
/// shared by every test of this binary, and `snapshot=cut` must not match
/// another test's `snapshot=cut-expired`.
fn holds(line: &str, needle: &str) -> bool {
    line.match_indices(needle).any(|(at, _)| {
        let rest = line.get(at + needle.len()..).unwrap_or_default();
        !rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    })
}

/// Waits until a log line holds every one of `needles` (each not followed by
/// more of a name); returns that line.
pub async fn wait_for_log(needles: &[&str]) -> String {
    let found = || {
        log_text()
            .lines()
            .find(|l| needles.iter().all(|n| holds(l, n)))
            .map(str::to_owned)
    };
    let wait = async {
        loop {
            let notified = logged().notified();
            tokio::pin!(notified);
            // Registered before looking, so a line logged in between still wakes us.
            notified.as_mut().enable();
            if let Some(line) = found() {
                return line;
            }
            notified.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no log line with {needles:?} within 20 s:\n{}", log_text()))
}

impl Pair {
    /// Waits until the newest receive is running and has recorded its stream
    /// header (the receiver writes the stream version when the header arrives),
    /// so a test that compares the database next compares a settled row.
    pub async fn receiving(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.history();
            let settled = rows.first().is_some_and(|r| {
                r.attempt.status == ferry::store::Status::Running
                    && r.attempt.stream_version.is_some()
            });
            if settled {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no running receive recorded its stream header within 30 s: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The target's receive history, newest first.
    pub fn history(&self) -> Vec<ferry::store::ReceiveRow> {
        self.nas2
            .store()
            .receive_history(&ferry::store::ReceiveFilter::default())
            .expect("history")
    }

    /// Where `latest` points in the replica directory.
    pub fn latest(&self) -> String {
        std::fs::read_link(self.replica_dir().join("latest"))
            .expect("latest link")
            .to_string_lossy()
            .into_owned()
    }

    /// Runs `sql` on the target's state.db directly: what a person with sqlite3
    /// (or a lost database) can do that no ferry command does.
    pub fn sql(&self, sql: &str) {
        let db = rusqlite::Connection::open(self.nas2.state.join(ferry::store::DB_FILE))
            .expect("open state.db");
        db.execute_batch(sql).expect("sql");
    }
}

/// The names of the subvolumes directly in `dir` (none if it does not exist).
pub async fn subvolumes(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    btrfs::list(dir)
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.name)
        .collect()
}
