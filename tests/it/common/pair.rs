//! Two appliances on this machine, paired as users pair them: nas1 sends the share
//! `photos` from its pool to nas2's pool `backup`, with nas2's receiver running
//! in-process on 127.0.0.1 (real TLS, real btrfs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::daemon::Daemon;
use super::ferry::Node;
use super::{require_root_and_btrfs, TestPool};

pub struct Pair {
    pub nas1: Node,
    pub nas2: Node,
    pub share: PathBuf,
    pub receiver: Option<Daemon>,
    // Pools last: they unmount after the daemon and nodes are gone.
    pub src: TestPool,
    pub dst: TestPool,
}

impl Pair {
    /// Both appliances initialized and paired, the receiver up, the task `photos`
    /// added with `task_args` appended.
    pub async fn new(task_args: &[&str]) -> Pair {
        require_root_and_btrfs();
        let src = TestPool::with_size(1 << 30);
        let dst = TestPool::with_size(1 << 30);
        let share = src.subvolume("photos");
        let nas1 = Node::init("nas1");
        let nas2 = Node::init("nas2");
        let dst_mount = dst.mount.to_str().expect("utf8").to_string();
        nas2.ok(&["pool", "add", "backup", &dst_mount]);
        let fp1 = nas1.fingerprint();
        nas2.ok(&[
            "appliance",
            "add",
            "nas1",
            "--address",
            "127.0.0.1",
            "--fingerprint",
            &fp1,
        ]);
        let receiver = Daemon::start(&nas2.state, |_| {}).await;
        let fp2 = nas2.fingerprint();
        let (meta, data) = (
            receiver.meta.port().to_string(),
            receiver.data.port().to_string(),
        );
        nas1.ok(&[
            "appliance",
            "add",
            "nas2",
            "--address",
            "127.0.0.1",
            "--fingerprint",
            &fp2,
            "--meta-port",
            &meta,
            "--data-port",
            &data,
        ]);
        let share_s = share.to_str().expect("utf8").to_string();
        let mut args = vec![
            "task",
            "add",
            "photos",
            "--share",
            &share_s,
            "--target",
            "nas2",
            "--pool",
            "backup",
            "--frequency",
            "5m",
        ];
        args.extend_from_slice(task_args);
        nas1.ok(&args);
        Pair {
            nas1,
            nas2,
            share,
            receiver: Some(receiver),
            src,
            dst,
        }
    }

    /// Adds a task `name` on nas1 for a new share (a subvolume) of the same name.
    pub fn add_task(&self, name: &str, frequency: &str) -> PathBuf {
        let share = self.src.subvolume(name);
        let share_s = share.to_str().expect("utf8");
        self.nas1.ok(&[
            "task",
            "add",
            name,
            "--share",
            share_s,
            "--target",
            "nas2",
            "--pool",
            "backup",
            "--frequency",
            frequency,
        ]);
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

    pub fn nas1_uuid(&self) -> String {
        self.nas1.json(&["id", "--json"])["uuid"]
            .as_str()
            .expect("uuid")
            .to_string()
    }

    /// `<pool>/.ferry/<nas1 uuid>/photos`: where nas2 keeps the replicas.
    pub fn replica_dir(&self) -> PathBuf {
        self.dst
            .mount
            .join(".ferry")
            .join(self.nas1_uuid())
            .join("photos")
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
