//! One run of a task: plan against the target's inventory, snapshot, stream,
//! confirm, record, prune. `ferry task run` and the scheduler both call `run_task`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use super::connect::{self, Conn, Target};
use super::lock::TaskLock;
use super::plan::{self, LocalSnapshot};
use super::Error;
use crate::identity::{self, Fingerprint};
use crate::store::{Kind, NewSend, Status, Store, Task};
use crate::wire::{self, ChunkWriter, Hello, Meta, MetaConn, Parent, CHUNK_SIZE};
use crate::{btrfs, names};

/// How often a running send writes its byte counts to the history row.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Bytes moved so far, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub stream_bytes: u64,
    pub wire_bytes: u64,
}

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
}

/// Runs `task` once. Every attempt leaves a history row: `skipped` when another
/// run holds the task, else `succeeded` only when the target confirmed the
/// snapshot's uuid, and `failed` with the reason otherwise.
pub async fn run_task(
    state_dir: &Path,
    task: &str,
    progress: Option<watch::Sender<Progress>>,
    cancel: CancellationToken,
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
    let lock = TaskLock::try_acquire(state_dir, &task.name)
        .map_err(|e| Error::Local(format!("cannot take the task lock: {e}")))?;
    let Some(_lock) = lock else {
        store.skipped_send(&row, "another run of this task was still in progress")?;
        return Err(Error::Busy(task.name.clone()));
    };
    let row = store.begin_send(&row)?;
    let mut run = Run {
        state_dir: state_dir.to_path_buf(),
        store,
        task,
        share,
        row,
        progress,
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
            run.store
                .finish_send(run.row, Status::Failed, Some(&e.to_string()), None)?;
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
}

impl Run {
    async fn execute(&mut self) -> Result<Outcome, Error> {
        let identity = identity::load(&self.state_dir)?;
        let me = self.store.identity()?.ok_or_else(|| {
            Error::Local("this appliance has no identity; run `ferry init`".into())
        })?;
        let target = self.target()?;
        let tls = identity::client_config(&identity, target.fingerprint)?;
        let hello = Hello::new(me.uuid, me.name);
        let mut meta = connect::meta(&target, tls.clone(), hello, identity.fingerprint).await?;
        let wire_err = |source| Error::Wire {
            appliance: target.name.clone(),
            source,
        };

        // Plan from what the target says it holds, never from local memory.
        meta.send(&Meta::Inventory {
            share: self.share.clone(),
            pool: self.task.pool.clone(),
        })
        .await
        .map_err(wire_err)?;
        let held: HashSet<Uuid> = match meta.recv_alive().await.map_err(wire_err)? {
            Meta::InventoryReply { replicas } => replicas.iter().map(|r| r.received_uuid).collect(),
            other => return Err(wire_err(wire::Error::unexpected("inventory_reply", other))),
        };
        let plan = plan::plan(&self.local_snapshots().await?, &held);
        for stale in &plan.unconfirmed {
            info!(task = %self.task.name, snapshot = %stale.name, "deleting a snapshot the target never confirmed");
            btrfs::delete(&stale.path).await?;
        }

        let snapshot = self.snapshot().await?;
        let kind = if plan.parent.is_some() {
            Kind::Incremental
        } else {
            Kind::Full
        };
        let parent_name = plan.parent.as_ref().map(|p| p.name.clone());
        self.store
            .set_send_plan(self.row, &snapshot.name, parent_name.as_deref(), kind)?;

        meta.send(&Meta::Begin {
            share: self.share.clone(),
            snapshot: snapshot.name.clone(),
            snapshot_uuid: snapshot.uuid,
            parent: plan.parent.as_ref().map(|p| Parent {
                name: p.name.clone(),
                uuid: p.uuid,
            }),
            pool: self.task.pool.clone(),
            keep: self.task.keep_target,
        })
        .await
        .map_err(wire_err)?;
        let session = match meta.recv_alive().await.map_err(wire_err)? {
            Meta::Ready { session } => session,
            other => return Err(wire_err(wire::Error::unexpected("ready", other))),
        };

        let data = connect::tls(&target, target.data_port, tls).await?;
        info!(task = %self.task.name, snapshot = %snapshot.name, %kind,
            parent = parent_name.as_deref().unwrap_or("-"), target = %target.name, "streaming");
        let stats = self
            .stream(
                &target,
                &mut meta,
                data,
                session,
                &snapshot,
                plan.parent.as_ref(),
            )
            .await?;

        meta.send(&Meta::Commit {
            stream_bytes: stats.stream_bytes,
            blake3: stats.blake3.clone(),
        })
        .await
        .map_err(wire_err)?;
        let received_uuid = match meta.recv_alive().await.map_err(wire_err)? {
            Meta::Received { received_uuid } => received_uuid,
            other => return Err(wire_err(wire::Error::unexpected("received", other))),
        };
        if received_uuid != snapshot.uuid {
            return Err(Error::WrongUuid {
                appliance: target.name.clone(),
                expected: snapshot.uuid,
                got: received_uuid,
            });
        }
        self.store
            .set_send_progress(self.row, stats.stream_bytes, stats.wire_bytes)?;
        self.store
            .finish_send(self.row, Status::Succeeded, None, Some(received_uuid))?;
        Ok(Outcome {
            row: self.row,
            snapshot: snapshot.name,
            parent: parent_name,
            kind,
            stream_bytes: stats.stream_bytes,
            wire_bytes: stats.wire_bytes,
            received_uuid,
        })
    }

    fn target(&self) -> Result<Target, Error> {
        let appliance = self
            .store
            .appliance(&self.task.target)?
            .ok_or_else(|| Error::Local(format!("appliance {} is gone", self.task.target)))?;
        let fingerprint: Fingerprint = appliance.fingerprint.parse().map_err(|e| {
            Error::Local(format!(
                "appliance {} has a bad fingerprint: {e}",
                appliance.name
            ))
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
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Local(format!("cannot create snapshot dir {}: {e}", dir.display()))
        })?;
        // Names carry the time to the second; a run in the same second as the
        // previous one (a manual run right after another) waits for the next.
        let mut now = Utc::now();
        let mut name = names::snapshot_name(&self.share, &self.task.name, now);
        if dir.join(&name).exists() {
            let next =
                now.duration_trunc(TimeDelta::seconds(1)).unwrap_or(now) + TimeDelta::seconds(1);
            tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
            now = Utc::now().max(next);
            name = names::snapshot_name(&self.share, &self.task.name, now);
        }
        let path = dir.join(&name);
        if path.exists() {
            return Err(Error::Local(format!(
                "snapshot {} already exists and is not one this task made",
                path.display()
            )));
        }
        let snapshot = btrfs::snapshot_readonly(&self.task.share, &path).await?;
        if !snapshot.readonly {
            return Err(Error::Local(format!(
                "snapshot {} is not read-only",
                path.display()
            )));
        }
        Ok(snapshot)
    }

    /// Streams `btrfs send` to the data connection while listening on the meta
    /// connection, where the receiver reports a failure (or keeps alive).
    async fn stream(
        &mut self,
        target: &Target,
        meta: &mut MetaConn<Conn>,
        data: Conn,
        session: Uuid,
        snapshot: &btrfs::Subvolume,
        parent: Option<&LocalSnapshot>,
    ) -> Result<Sent, Error> {
        let mut writer = ChunkWriter::open(data, session, 0, self.task.compress)
            .await
            .map_err(|source| Error::Stream { bytes: 0, source })?;
        let mut send = btrfs::send(&snapshot.path, parent.map(|p| p.path.as_path()))?;
        let pumped = tokio::select! {
            r = self.pump(&mut send, &mut writer) => r,
            msg = meta.recv_alive() => Err(aborted(target, writer.stats().raw_bytes(), msg)),
        };
        if let Err(Error::Stream { bytes, .. }) = &pumped {
            // A receiver that failed closes the data connection and says why on
            // the meta connection: prefer its reason to "connection lost".
            if let Ok(msg) = tokio::time::timeout(Duration::from_secs(2), meta.recv()).await {
                return Err(aborted(target, *bytes, msg));
            }
        }
        pumped?;
        let bytes = writer.stats().raw_bytes();
        let stats = writer
            .finish()
            .await
            .map_err(|source| Error::Stream { bytes, source })?;
        Ok(Sent {
            stream_bytes: stats.raw_bytes(),
            wire_bytes: stats.wire_bytes,
            blake3: stats.blake3,
        })
    }

    async fn pump(
        &self,
        send: &mut btrfs::SendStream,
        writer: &mut ChunkWriter<Conn>,
    ) -> Result<(), Error> {
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut noted = Instant::now();
        loop {
            let n = fill(send, &mut buf).await.map_err(send_error)?;
            if n == 0 {
                return Ok(());
            }
            let before = writer.stats().raw_bytes();
            writer
                .write_chunk(&buf[..n])
                .await
                .map_err(|source| Error::Stream {
                    bytes: before,
                    source,
                })?;
            let stats = writer.stats();
            if let Some(p) = &self.progress {
                p.send_replace(Progress {
                    stream_bytes: stats.raw_bytes(),
                    wire_bytes: stats.wire_bytes,
                });
            }
            if noted.elapsed() >= PROGRESS_EVERY {
                noted = Instant::now();
                self.store
                    .set_send_progress(self.row, stats.raw_bytes(), stats.wire_bytes)?;
            }
        }
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

struct Sent {
    stream_bytes: u64,
    wire_bytes: u64,
    blake3: String,
}

/// Reads until `buf` is full or the stream ends: full chunks compress better
/// and cost fewer frames than whatever a pipe read happens to return.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// `SendStream` reports a failed `btrfs send` as an I/O error wrapping the
/// btrfs error; unwrap it so the history row shows btrfs's own words.
fn send_error(e: std::io::Error) -> Error {
    match e.into_inner().map(|inner| inner.downcast::<btrfs::Error>()) {
        Some(Ok(btrfs)) => Error::Btrfs(*btrfs),
        Some(Err(other)) => Error::Local(format!("reading btrfs send: {other}")),
        None => Error::Local("reading btrfs send failed".into()),
    }
}

/// What the receiver said (or failed to say) in the middle of a stream.
fn aborted(target: &Target, bytes: u64, msg: Result<Meta, wire::Error>) -> Error {
    let reason = match msg {
        Ok(Meta::Failed { reason } | Meta::Abort { reason } | Meta::Error { reason }) => reason,
        Ok(other) => format!("unexpected {} during the stream", other.kind()),
        Err(e) => format!("meta connection: {e}"),
    };
    Error::Aborted {
        appliance: target.name.clone(),
        bytes,
        reason,
    }
}
