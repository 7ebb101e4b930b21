//! What a run is given beyond its task, and what it gives back when it does
//! not fail: a confirmed send, or a skip of an unchanged share.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use uuid::Uuid;

use super::Error;
use crate::config::HookSettings;
use crate::store::Kind;
use crate::wire::{Keepalive, Throttle};

/// How a run that did not fail ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A snapshot was sent and the target confirmed it.
    Sent(Sent),
    /// The share had not changed since `since`, which the target holds: no
    /// snapshot was taken, and the row says `skipped`.
    Unchanged { row: i64, since: String },
}

/// A confirmed send.
#[derive(Debug, Clone)]
pub struct Sent {
    pub row: i64,
    pub snapshot: String,
    pub parent: Option<String>,
    pub kind: Kind,
    pub stream_bytes: u64,
    pub wire_bytes: u64,
    pub received_uuid: Uuid,
    /// Where this run's stream started: 0, or the offset of a parked receive
    /// it continued (bytes of the send stream).
    pub resumed_from: u64,
    /// From Begin to the target's confirmation: what a rate is over
    /// (connecting, the snapshot and pruning are not the transfer).
    pub transfer_time: Duration,
    /// What the run found that the user should know (also on its row).
    pub warnings: Vec<String>,
}

/// How a run behaves beyond what its task says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long a broken transfer keeps reconnecting to resume before it fails
    /// (`sender.resume_for`).
    pub resume_for: Duration,
    pub keepalive: Keepalive,
    /// Hook defaults and their timeout (`sender.hooks`).
    pub hooks: HookSettings,
    /// The sender-wide bandwidth cap all sends share (`sender.bwlimit`).
    pub cap: Throttle,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            resume_for: Duration::from_secs(10 * 60),
            keepalive: Keepalive::DEFAULT,
            hooks: HookSettings::default(),
            cap: Throttle::default(),
        }
    }
}

/// `fut`, unless `cancel` fires first.
pub(super) async fn until<T>(
    cancel: &CancellationToken,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::select! {
        r = fut => r,
        () = cancel.cancelled() => Err(Error::Interrupted),
    }
}
