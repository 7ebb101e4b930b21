//! How a receiver listens and how long it waits: the daemon's settings, with the
//! defaults `ferry receiver` uses when the config file says nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::housekeeping::Retention;
use crate::wire::{Features, Keepalive};
use crate::{btrfs, capabilities};

/// How the daemon listens and how long it waits for peers.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub listen: IpAddr,
    /// 0 picks a free port ([`super::Receiver::meta_addr`] tells which).
    pub meta_port: u16,
    /// 0 picks a free port ([`super::Receiver::data_addr`] tells which).
    pub data_port: u16,
    /// Receives running at once, over all peers; more wait for a slot.
    pub max_receives: usize,
    /// How long a Begin waits for one of the `max_receives` slots (first come,
    /// first served) before it is refused as busy, with this as its
    /// `retry_after`. The session answers keepalives meanwhile. 0: refuse at once.
    pub slot_wait: Duration,
    /// TLS handshake, hellos, and the data connection's first frame.
    pub handshake_timeout: Duration,
    /// TLS handshakes in progress at once, over both ports. Each costs a task and
    /// up to `handshake_timeout` before the peer has proven anything, so a flood
    /// of unauthenticated connections is cut off here; those over are dropped.
    pub max_handshakes: usize,
    /// Wait for the data connection after Ready, and the longest stall while reading it.
    pub data_timeout: Duration,
    /// How long btrfs receive may take to exit once its stream has ended; then it
    /// is killed and the receive fails. It flushes what it buffered, which on a
    /// slow or busy disk takes a while, but a hung one must not hold the share's
    /// lock (and a receive slot) forever.
    pub finish_timeout: Duration,
    /// The bound on each other btrfs command of a receive (show, delete): they
    /// take seconds at worst, unless the filesystem is wedged.
    pub btrfs_timeout: Duration,
    /// Keepalive timings of meta sessions.
    pub keepalive: Keepalive,
    /// How long a receive whose connection broke is kept for a resume.
    pub resume_window: Duration,
    /// The btrfs executable that runs `btrfs receive` (default: `btrfs` in `PATH`).
    pub btrfs: PathBuf,
    /// When the audit of replicas on disk against the table runs (cron, 6
    /// fields, UTC); `None`: never.
    pub audit: Option<String>,
    /// Receive history retention; `None`: history is kept forever.
    pub history: Option<Retention>,
    /// The most replicas kept of one line (pool, source, share), whatever
    /// the sender asks to keep.
    pub max_replicas_per_line: u32,
    /// The protocol features this receiver offers (default: what this
    /// appliance supports); tests take some away to play an older release.
    pub features: Features,
}

impl Config {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Config {
            state_dir: state_dir.into(),
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            meta_port: 10003,
            data_port: 10002,
            max_receives: 4,
            slot_wait: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 64,
            data_timeout: Duration::from_secs(30),
            finish_timeout: Duration::from_secs(10 * 60),
            btrfs_timeout: Duration::from_secs(2 * 60),
            keepalive: Keepalive::DEFAULT,
            resume_window: Duration::from_secs(15 * 60),
            btrfs: PathBuf::from(btrfs::BTRFS),
            audit: Some("0 0 */6 * * *".to_string()),
            history: Some(Retention::default_daily()),
            max_replicas_per_line: crate::retention::DEFAULT_MAX_REPLICAS_PER_LINE,
            features: capabilities::offered(),
        }
    }
}
