//! One run of a task: plan against the target's inventory, snapshot, stream,
//! confirm, record, prune. `ferry task run` and the scheduler both call `run_task`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use super::connect::{self, Target};
use super::lock::TaskLock;
use super::orphans::{fail_orphaned_rows, Orphans};
use super::pace;
use super::plan::{self, LocalSnapshot};
use super::stream::{Compression, Progress, Report};
use super::transfer::Transfer;
use super::Error;
use crate::bandwidth::Rate;
use crate::identity::{self, Fingerprint};
use crate::store::{Finish, Kind, NewSend, Status, Store, Task};
use crate::wire::{Begin, Feature, Hello, Inventory, Keepalive, Parent, Throttle};
use crate::{btrfs, capabilities, names};

/// A confirmed send.
#[derive(Debug, Clone)]
pub struct Outcome {
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
}

/// How a run behaves beyond what its task says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long a broken transfer keeps reconnecting to resume before it fails
    /// (`sender.resume_for`).
    pub resume_for: Duration,
    pub keepalive: Keepalive,
    /// The sender-wide bandwidth cap all sends share (`sender.bwlimit`).
    pub cap: Throttle,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            resume_for: Duration::from_secs(10 * 60),
            keepalive: Keepalive::DEFAULT,
            cap: Throttle::default(),
        }
    }
}

/// Runs `task` once. Every attempt leaves a history row: `skipped` when another
/// run holds the task, else `succeeded` only when the target confirmed the
/// snapshot's uuid, and `failed` with the reason otherwise.
///
/// # Errors
///
/// Every way a run fails, as [`Error`]; [`Error::is_temporary`] says whether to retry soon.
/// The history row says the same.
pub async fn run_task(
    state_dir: &Path,
    task: &str,
    progress: Option<watch::Sender<Progress>>,
    cancel: CancellationToken,
    options: RunOptions,
) -> Result<Outcome, Error> {
    let store = Store::open(state_dir)?;
    let task = store
        .task(task)?
        .ok_or_else(|| Error::NoTask(task.to_string()))?;
    let share = task.share_name();
    let row = NewSend {
        task_id: Some(task.id),
        task: &task.name,
        target: &task.target,
        share: &share,
    };
    let lock = TaskLock::try_acquire(state_dir, &task.name).map_err(|source| Error::Lock {
        task: task.name.clone(),
        source,
    })?;
    let Some(_lock) = lock else {
        store.skipped_send(&row, "another run of this task was still in progress")?;
        return Err(Error::Busy(task.name.clone()));
    };
    fail_orphaned_rows(&store, Orphans::OfLockedTask(&task.name))?;
    let row = store.begin_send(&row)?;
    let mut run = Run {
        state_dir: state_dir.to_path_buf(),
        store,
        task,
        share,
        row,
        progress,
        sent: Progress::default(),
        options,
    };
    let result = tokio::select! {
        r = run.execute() => r,
        () = cancel.cancelled() => Err(Error::Interrupted),
    };
    match &result {
        Ok(outcome) => {
            info!(task = %run.task.name, snapshot = %outcome.snapshot, kind = %outcome.kind,
                stream_bytes = outcome.stream_bytes, wire_bytes = outcome.wire_bytes, "send succeeded");
            run.prune(outcome.received_uuid).await;
        }
        Err(e) => {
            warn!(task = %run.task.name, error = %e, "send failed");
            let closed = run.store.finish_send_counted(
                run.row,
                &Finish {
                    status: Status::Failed,
                    error: Some(&e.to_string()),
                    received_uuid: None,
                    // A cancelled run never got its counts back: keep the last
                    // progress written to the row rather than zeros.
                    bytes: (run.sent != Progress::default())
                        .then_some((run.sent.stream_bytes, run.sent.wire_bytes)),
                },
            );
            // The run's own error is what the caller needs; a history write
            // failing on top of it is logged, not swapped in.
            if let Err(db) = closed {
                warn!(task = %run.task.name, row = run.row, error = %db, "cannot record the failure");
            }
        }
    }
    result
}

struct Run {
    state_dir: PathBuf,
    store: Store,
    task: Task,
    share: String,
    row: i64,
    progress: Option<watch::Sender<Progress>>,
    /// Bytes moved so far, recorded on the row however the run ends.
    sent: Progress,
    options: RunOptions,
}

impl Run {
    async fn execute(&mut self) -> Result<Outcome, Error> {
        let identity = identity::load(&self.state_dir)?;
        let me = self.store.identity()?.ok_or(Error::NoIdentity)?;
        let target = self.target()?;
        let tls = identity::client_config(&identity, target.fingerprint)?;
        let hello = Hello::new(me.uuid, me.name, &capabilities::offered());
        let keepalive = self.options.keepalive;
        // The task's own limit follows `task set` while the run goes on.
        let own = Throttle::new(Rate(self.task.bwlimit), None);
        let _follow = pace::follow(self.state_dir.clone(), self.task.name.clone(), own.clone());
        let mut client = connect::meta(
            &target,
            tls.clone(),
            hello.clone(),
            identity.fingerprint,
            keepalive,
        )
        .await?;

        // Plan from what the target says it holds, never from local memory.
        let inventory = client
            .inventory(Inventory {
                share: self.share.clone(),
                pool: self.task.pool.clone(),
            })
            .await
            .map_err(|source| Error::Wire {
                appliance: target.name.clone(),
                source,
            })?;
        let held = inventory.replicas.iter().map(|r| r.received_uuid).collect();
        let confirmed = self.store.confirmed_uuids(&self.task.name)?;
        let local = self.local_snapshots().await?;
        let plan = plan::plan(&local, &held, &confirmed);
        // A receive of ours the target parked when its connection broke:
        // continue it rather than take a new snapshot and start over.
        let parked = inventory
            .parked
            .as_ref()
            .and_then(|p| plan::parked(&plan, p))
            .filter(|_| client.features().has(Feature::Resume));
        for stale in &plan.unconfirmed {
            if parked.as_ref().is_some_and(|p| p.uuid == stale.uuid) {
                continue;
            }
            info!(task = %self.task.name, snapshot = %stale.name, "deleting a snapshot the target never confirmed");
            btrfs::delete(&stale.path).await?;
        }
        let snapshot = match &parked {
            Some(p) => sendable(btrfs::show(&p.path).await?)?,
            None => self.snapshot().await?,
        };
        let kind = if plan.parent.is_some() {
            Kind::Incremental
        } else {
            Kind::Full
        };
        let parent_name = plan.parent.as_ref().map(|p| p.name.clone());
        self.store
            .set_send_plan(self.row, &snapshot.name, parent_name.as_deref(), kind)?;
        info!(task = %self.task.name, snapshot = %snapshot.name, %kind,
            parent = parent_name.as_deref().unwrap_or("-"), target = %target.name, "streaming");
        let transfer = Transfer {
            target: &target,
            tls,
            hello,
            my_fingerprint: identity.fingerprint,
            keepalive,
            begin: Begin {
                share: self.share.clone(),
                snapshot: snapshot.name.clone(),
                snapshot_uuid: snapshot.uuid,
                parent: plan.parent.as_ref().map(|p| Parent {
                    name: p.name.clone(),
                    uuid: p.uuid,
                }),
                pool: self.task.pool.clone(),
                keep: self.task.keep_target,
                resume: false,
            },
            snapshot: snapshot.path.clone(),
            parent: plan.parent.as_ref().map(|p| p.path.clone()),
            compression: Compression {
                level: self.task.compress,
                adaptive: self.task.compress_auto,
            },
            resume_for: self.options.resume_for,
            throttles: vec![own, self.options.cap.clone()],
        };
        let mut report = Report {
            store: &self.store,
            row: self.row,
            live: self.progress.as_ref(),
            sent: Progress::default(),
            wire_before: 0,
        };
        let confirmed = transfer
            .run(&mut client, &mut report, parked.is_some())
            .await;
        self.sent = report.sent;
        let confirmed = confirmed?;
        if confirmed.resumed_from > 0 {
            self.store
                .set_send_resumed_from(self.row, confirmed.resumed_from)?;
        }
        let (sent, received_uuid) = (confirmed.sent, confirmed.received_uuid);
        if received_uuid != snapshot.uuid {
            return Err(Error::WrongUuid {
                appliance: target.name.clone(),
                expected: snapshot.uuid,
                got: received_uuid,
            });
        }
        client.close().await;
        self.store.finish_send_counted(
            self.row,
            &Finish {
                status: Status::Succeeded,
                error: None,
                received_uuid: Some(received_uuid),
                bytes: Some((sent.stream_bytes, sent.wire_bytes)),
            },
        )?;
        Ok(Outcome {
            row: self.row,
            snapshot: snapshot.name,
            parent: parent_name,
            kind,
            stream_bytes: sent.stream_bytes,
            wire_bytes: sent.wire_bytes,
            received_uuid,
            resumed_from: confirmed.resumed_from,
        })
    }

    fn target(&self) -> Result<Target, Error> {
        let appliance = self
            .store
            .appliance(&self.task.target)?
            .ok_or_else(|| Error::ApplianceGone(self.task.target.clone()))?;
        let fingerprint: Fingerprint =
            appliance
                .fingerprint
                .parse()
                .map_err(|source| Error::BadFingerprint {
                    appliance: appliance.name.clone(),
                    source,
                })?;
        Ok(Target {
            meta_port: self.task.meta_port.unwrap_or(appliance.meta_port),
            data_port: self.task.data_port.unwrap_or(appliance.data_port),
            name: appliance.name,
            address: appliance.address,
            fingerprint,
        })
    }

    async fn local_snapshots(&self) -> Result<Vec<LocalSnapshot>, Error> {
        if !self.task.snapshot_dir.exists() {
            return Ok(Vec::new());
        }
        let subvolumes = btrfs::list(&self.task.snapshot_dir).await?;
        Ok(plan::task_snapshots(
            subvolumes,
            &self.share,
            &self.task.name,
        ))
    }

    async fn snapshot(&self) -> Result<btrfs::Subvolume, Error> {
        let dir = &self.task.snapshot_dir;
        std::fs::create_dir_all(dir).map_err(|source| Error::SnapshotDir {
            path: dir.clone(),
            source,
        })?;
        // Names carry the time to the second; a run in the same second as the
        // previous one (a manual run right after another) waits for the next.
        let mut now = Utc::now();
        let mut name = names::snapshot_name(&self.share, &self.task.name, now);
        if dir.join(&name).exists() {
            let next = now
                .duration_trunc(TimeDelta::seconds(1))
                .unwrap_or(now)
                .checked_add_signed(TimeDelta::seconds(1))
                .unwrap_or(now);
            tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
            now = Utc::now().max(next);
            name = names::snapshot_name(&self.share, &self.task.name, now);
        }
        let path = dir.join(&name);
        if path.exists() {
            return Err(Error::SnapshotExists { path });
        }
        let snapshot = btrfs::snapshot_readonly(&self.task.share, &path).await?;
        sendable(snapshot)
    }

    /// Source retention: keep the newest `keep_source`, never the common base.
    async fn prune(&self, common_base: Uuid) {
        let local = match self.local_snapshots().await {
            Ok(local) => local,
            Err(e) => return warn!(task = %self.task.name, error = %e, "retention skipped"),
        };
        let keep = usize::try_from(self.task.keep_source).unwrap_or(usize::MAX);
        for old in plan::prune(&local, keep, Some(common_base)) {
            match btrfs::delete(&old.path).await {
                Ok(()) => {
                    info!(task = %self.task.name, snapshot = %old.name, "retention deleted a snapshot")
                }
                Err(e) => {
                    warn!(task = %self.task.name, snapshot = %old.name, error = %e, "retention could not delete")
                }
            }
        }
    }
}

/// `snapshot` if it may be sent: only a read-only snapshot is a stable send
/// source (btrfs send itself insists), and only it can become a common base.
///
/// # Errors
///
/// [`Error::NotReadOnly`].
fn sendable(snapshot: btrfs::Subvolume) -> Result<btrfs::Subvolume, Error> {
    if snapshot.readonly {
        Ok(snapshot)
    } else {
        Err(Error::NotReadOnly {
            path: snapshot.path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins: the sender refuses to send a snapshot that is not read-only, with
    /// the path in the reason; a read-only one passes unchanged.
    #[test]
    fn only_a_read_only_snapshot_is_sendable() {
        let sub = |readonly| btrfs::Subvolume {
            path: PathBuf::from("/pool/.ferry-snapshots/photos/photos_t_20261129T000000Z"),
            name: "photos_t_20261129T000000Z".into(),
            uuid: Uuid::from_u128(7),
            parent_uuid: None,
            received_uuid: None,
            readonly,
            generation: 9,
            created: None,
        };
        let err = sendable(sub(false)).expect_err("writable");
        assert!(matches!(err, Error::NotReadOnly { .. }));
        assert!(!err.is_temporary());
        assert!(err
            .to_string()
            .contains("photos_t_20261129T000000Z is not read-only"));
        assert_eq!(sendable(sub(true)).expect("read-only"), sub(true));
    }
}
