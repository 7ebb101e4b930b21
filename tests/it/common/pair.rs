//! Replication through the real CLI: nas1 sends the share `photos` from its pool
//! to nas2's pool `backup` (the `nodes` pairing), with nas2's receiver running
//! in-process on 127.0.0.1 (real TLS, real btrfs) and `ferry task run` on nas1.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use super::daemon::Daemon;
use super::ferry::task_add;
use super::nodes::Nodes;

/// nas1 and nas2 as [`Nodes`] pairs them, on 1 GiB pools, with nas2's receiver
/// running and nas1 pointed at it, and the task `photos` added on nas1.
pub struct Pair {
    pub receiver: Option<Daemon>,
    // Last: the pools unmount after the receiver has stopped.
    nodes: Nodes,
}

impl Deref for Pair {
    type Target = Nodes;

    fn deref(&self) -> &Nodes {
        &self.nodes
    }
}

impl Pair {
    /// Both appliances initialized and paired, the receiver up, the task `photos`
    /// added with `task_args` appended.
    pub async fn new(task_args: &[&str]) -> Pair {
        Pair::with_receiver(task_args, |_| {}).await
    }

    /// [`Pair::new`] with nas2's receiver configured by `tweak`.
    pub async fn with_receiver(
        task_args: &[&str],
        tweak: impl FnOnce(&mut ferry::receiver::Config),
    ) -> Pair {
        let nodes = Nodes::with_pool_size(1 << 30);
        let receiver = Daemon::start(&nodes.nas2.state, tweak).await;
        nodes.nas1_sends_to(&receiver);
        let share_s = nodes.share.to_str().expect("utf8").to_string();
        nodes
            .nas1
            .ok(&task_add("photos", &share_s, "5m", task_args));
        Pair {
            receiver: Some(receiver),
            nodes,
        }
    }

    /// Adds a task `name` on nas1 for a new share (a subvolume) of the same name.
    pub fn add_task(&self, name: &str, frequency: &str) -> PathBuf {
        let share = self.src.subvolume(name);
        let share_s = share.to_str().expect("utf8");
        self.nas1.ok(&task_add(name, share_s, frequency, &[]));
        share
    }

    /// Starts nas2's receiver again on the ports nas1 knows.
    pub async fn restart_receiver(&mut self, meta: SocketAddr, data: SocketAddr) {
        let daemon = Daemon::start(&self.nas2.state, |c| {
            c.meta_port = meta.port();
            c.data_port = data.port();
        })
        .await;
        self.receiver = Some(daemon);
    }

    /// Stops nas2's receiver; returns its addresses for `restart_receiver`.
    pub async fn stop_receiver(&mut self) -> (SocketAddr, SocketAddr) {
        let daemon = self.receiver.take().expect("the receiver is running");
        let addrs = (daemon.meta, daemon.data);
        daemon.stop().await;
        addrs
    }

    /// `ferry task run photos` through the real binary, without blocking the
    /// runtime the receiver runs on.
    pub async fn run(&self) -> std::process::Output {
        self.nas1.run_async(&["task", "run", "photos"]).await
    }

    /// A run that must succeed.
    pub async fn run_ok(&self) -> String {
        let out = self.run().await;
        assert!(
            out.status.success(),
            "task run failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A run that must fail (exit 1); returns its stderr.
    pub async fn run_failed(&self) -> String {
        let out = self.run().await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "expected a failed run: {stderr}"
        );
        stderr
    }

    pub fn latest(&self) -> PathBuf {
        self.replica_dir().join("latest")
    }

    /// The task's snapshots on nas1, oldest first.
    pub fn local_snapshots(&self) -> Vec<String> {
        names_in(&self.src.mount.join(".ferry-snapshots/photos"))
    }

    /// The replicas on nas2 (subvolumes, not `latest`), oldest first.
    pub fn replicas(&self) -> Vec<String> {
        names_in(&self.replica_dir())
            .into_iter()
            .filter(|n| n != "latest")
            .collect()
    }

    pub fn send_rows(&self) -> serde_json::Value {
        self.nas1
            .json(&["history", "send", "--json", "--limit", "100"])
    }

    pub fn receive_rows(&self) -> serde_json::Value {
        self.nas2
            .json(&["history", "receive", "--json", "--limit", "100"])
    }
}

/// Sorted entry names of a directory; none when it does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
