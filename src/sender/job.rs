//! One run of a task: plan against the target's inventory, skip when the share
//! is unchanged, snapshot between its hooks, stream, confirm, record, prune.
//! `ferry task run` and the scheduler both call `run_task`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use super::connect::{self, Session};
use super::failback;
use super::hooks::{self, Facts, Hook};
use super::lock::TaskLock;
use super::orphans::{fail_orphaned_rows, Orphans};
use super::retain::{self, preserve_text, zone_of};
use super::run::{until, Outcome, RunOptions, Sent};
use super::stream::{Compression, Progress, Report};
use super::transfer::Transfer;
use super::Error;
use super::{expect, pace, plan, share, snapshot};
use crate::bandwidth::Rate;
use crate::btrfs;
use crate::store::{Finish, Kind, NewSend, Status, Store, Task};
use crate::wire::{Begin, Feature, Inventory, Parent, Throttle};

/// Runs `task` once. Every attempt leaves a history row: `skipped` when another
/// run holds the task or the share is unchanged, else `succeeded` only when the
/// target confirmed the snapshot's uuid, and `failed` with the reason otherwise.
/// `options` holds the resume window, keepalives and hook defaults.
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
        snapshot_path: None,
        warnings: Vec::new(),
    };
    let result = run.execute(&cancel).await;
    let mut facts = Facts::after(&run.task, run.snapshot_path.as_deref());
    match &result {
        Ok(Outcome::Sent(sent)) => {
            info!(task = %run.task.name, snapshot = %sent.snapshot, kind = %sent.kind,
                stream_bytes = sent.stream_bytes, wire_bytes = sent.wire_bytes, "send succeeded");
            run.prune(sent.received_uuid).await;
            facts.status = "succeeded".into();
        }
        Ok(Outcome::Unchanged { since, .. }) => {
            info!(task = %run.task.name, since = %since, "skipped: no change since the last confirmed snapshot");
            facts.status = "skipped".into();
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
                tracing::error!(task = %run.task.name, row = run.row, error = %db, "cannot record the failure");
            }
            facts.status = "failed".into();
            facts.error = e.to_string();
        }
    }
    let after = if result.is_ok() {
        Hook::OnSuccess
    } else {
        Hook::OnFailure
    };
    let defaults = &run.options.hooks;
    if let Some(cmd) = after.command(&run.task, defaults) {
        if let Err(e) = hooks::run(after, cmd, &facts, defaults.timeout).await {
            warn!(task = %run.task.name, error = %e, "hook failed");
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
    /// The snapshot this run took, for the hooks after it.
    snapshot_path: Option<PathBuf>,
    /// Recorded on the row as they come, so a failed run keeps them too.
    warnings: Vec<String>,
}

impl Run {
    /// Cancellable everywhere but between the hooks around the snapshot.
    async fn execute(&mut self, cancel: &CancellationToken) -> Result<Outcome, Error> {
        let keepalive = self.options.keepalive;
        let mut session = until(
            cancel,
            connect::session(&self.state_dir, &self.store, &self.task, keepalive),
        )
        .await?;
        let wire_err = |source| Error::Wire {
            appliance: session.target.name.clone(),
            source,
        };

        // Plan from what the target says it holds, never from local memory.
        let inventory = until(cancel, async {
            session
                .client
                .inventory(Inventory {
                    share: self.share.clone(),
                    pool: self.task.pool.clone(),
                    ..Default::default()
                })
                .await
                .map_err(wire_err)
        })
        .await?;
        let held = inventory.replicas.iter().map(|r| r.received_uuid).collect();
        // Replicas the target holds but withholds as parents: they changed.
        let changed_there: HashMap<_, _> = inventory
            .withheld
            .iter()
            .map(|w| (w.received_uuid, w.reason.clone()))
            .collect();
        let confirmed = self.store.confirmed_uuids(&self.task.name)?;
        let local = snapshot::owned(&self.store, &self.task).await?;
        let plan = plan::plan(
            &local.ours,
            &held,
            &changed_there,
            &HashMap::new(),
            &confirmed,
        );
        // A receive of ours the target parked when its connection broke:
        // continue it rather than take a new snapshot and start over.
        let parked = inventory
            .parked
            .as_ref()
            .and_then(|p| plan::parked(&plan, p))
            .filter(|_| session.client.features().has(Feature::Resume));
        for stale in &plan.unconfirmed {
            if parked.as_ref().is_some_and(|p| p.uuid == stale.uuid) {
                continue;
            }
            info!(task = %self.task.name, snapshot = %stale.name, "deleting a snapshot the target never confirmed");
            btrfs::delete_lazily(&stale.path).await?;
        }
        if self.task.skip_unchanged && parked.is_none() {
            let now = snapshot::share_ctransid(&self.task.share).await?;
            if let Some(since) = plan::unchanged_since(&plan, now) {
                self.store.unchanged_send(self.row, &since.name)?;
                self.snapshot_path = Some(since.path.clone());
                let since = since.clone();
                session.client.close().await;
                self.prune(since.uuid).await;
                return Ok(Outcome::Unchanged {
                    row: self.row,
                    since: since.name,
                });
            }
        }

        self.check_nested().await;
        let taken = match &parked {
            // Taken, between its hooks, by the run that was cut.
            Some(p) => snapshot::sendable(btrfs::show(&p.path).await?)?,
            // Not cancellable: a pre-snapshot hook is always followed by its
            // post-snapshot hook. A cancel meanwhile is honoured right after.
            None => {
                // A name the target holds (or withholds) is never reused.
                let names = (inventory.replicas.iter().map(|r| r.name.clone()))
                    .chain(inventory.withheld.iter().map(|w| w.name.clone()))
                    .collect();
                let take = snapshot::take(&self.store, &self.task, &self.share, self.row, names);
                snapshot::take_with_hooks(&self.task, &self.options.hooks, take).await?
            }
        };
        self.snapshot_path = Some(taken.path.clone());
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        // A parked receive continues from the parent it began with.
        let plan = match parked {
            Some(_) => plan,
            None => share::recheck(
                &self.store,
                self.task.id,
                plan,
                &plan::Inputs {
                    local: &local.ours,
                    held: &held,
                    changed_there: &changed_there,
                    confirmed: &confirmed,
                },
                &taken,
            )?,
        };
        // No common base: a share restored from a replica of the target's
        // may still go incrementally, from the target's own snapshot.
        let (plan, failback) = match &parked {
            Some(_) => (plan, None),
            None => {
                let consider =
                    failback::consider(&mut session, &self.store, &self.task, &self.share, plan);
                until(cancel, consider).await?
            }
        };
        self.warn_all(failback);
        for skipped in &plan.skipped {
            self.warn(format!(
                "base {} skipped: {}",
                skipped.snapshot, skipped.reason
            ));
        }
        let resume = parked.is_some();
        let outcome = until(cancel, self.send(&mut session, &plan, taken, resume)).await?;
        session.client.close().await;
        Ok(outcome)
    }

    /// Streams `snapshot` from the plan's parent (continuing a parked receive
    /// when `resume`) and waits for the verdict.
    async fn send(
        &mut self,
        session: &mut Session,
        plan: &plan::Plan,
        snapshot: btrfs::Subvolume,
        resume: bool,
    ) -> Result<Outcome, Error> {
        let target = session.target.clone();
        let kind = if plan.parent.is_some() {
            Kind::Incremental
        } else {
            Kind::Full
        };
        let parent_name = plan.parent.as_ref().map(|p| p.name.clone());
        self.store
            .set_send_plan(self.row, &snapshot.name, parent_name.as_deref(), kind)?;
        let expected = expect::expected(&self.store, &self.task, kind, self.row).await;
        let options = share::send_options(&self.task, session.client.features());
        self.store
            .set_send_stream_version(self.row, options.proto)?;
        info!(task = %self.task.name, snapshot = %snapshot.name, %kind,
            parent = parent_name.as_deref().unwrap_or("-"), target = %target.name,
            stream_version = options.proto, compressed_data = options.compressed_data, "streaming");
        // The grid, its zone and the snapshot's time go only to a receiver
        // that applies them; an older one keeps the newest `keep`.
        let grid = session.client.features().has(Feature::RetentionGrid);
        // The task's own limit follows `task set` while the run goes on.
        let own = Throttle::new(Rate(self.task.bwlimit), None);
        let _follow = pace::follow(self.state_dir.clone(), self.task.name.clone(), own.clone());
        let transfer = Transfer {
            target: &target,
            tls: session.tls.clone(),
            hello: session.hello.clone(),
            my_fingerprint: session.my_fingerprint,
            keepalive: session.keepalive,
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
                preserve: preserve_text(&self.task).filter(|_| grid),
                zone: grid.then(|| zone_of(&self.task).name().to_string()),
                created: snapshot.created.filter(|_| grid),
                failback: plan.failback,
            },
            snapshot: snapshot.path.clone(),
            parent: plan.parent.as_ref().map(|p| p.path.clone()),
            send: options,
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
            expected,
        };
        let started = std::time::Instant::now();
        let confirmed = transfer.run(&mut session.client, &mut report, resume).await;
        self.sent = report.sent;
        let confirmed = confirmed?;
        let transfer_time = started.elapsed();
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
        self.store.finish_send_counted(
            self.row,
            &Finish {
                status: Status::Succeeded,
                error: None,
                received_uuid: Some(received_uuid),
                bytes: Some((sent.stream_bytes, sent.wire_bytes)),
            },
        )?;
        Ok(Outcome::Sent(Sent {
            row: self.row,
            snapshot: snapshot.name,
            parent: parent_name,
            kind,
            stream_bytes: sent.stream_bytes,
            wire_bytes: sent.wire_bytes,
            received_uuid,
            resumed_from: confirmed.resumed_from,
            transfer_time,
            warnings: self.warnings.clone(),
        }))
    }

    /// [`Run::warn`] for each of `warnings`.
    fn warn_all(&mut self, warnings: impl IntoIterator<Item = String>) {
        warnings.into_iter().for_each(|w| self.warn(w));
    }

    /// A warning for the user: logged, and kept on the run's row.
    fn warn(&mut self, warning: String) {
        warn!(task = %self.task.name, "{warning}");
        if let Err(e) = self.store.add_send_warning(self.row, &warning) {
            warn!(task = %self.task.name, error = %e, "cannot record a warning on the run's row");
        }
        self.warnings.push(warning);
    }

    /// Names the nested subvolumes of the share, and records them on the row:
    /// btrfs send leaves them out, so a replica lacks them however the run
    /// ends, and a later run checks the directories that held them.
    async fn check_nested(&mut self) {
        if let Some(warning) = share::record_nested(&self.store, &self.task, self.row).await {
            self.warn(warning);
        }
    }

    /// Source retention, never deleting `common_base` (the snapshot the
    /// target just confirmed, or still holds unchanged).
    async fn prune(&self, common_base: Uuid) {
        match snapshot::owned(&self.store, &self.task).await {
            Ok(local) => {
                retain::prune_source(&self.task, &local.ours, &HashSet::from([common_base])).await;
            }
            Err(e) => warn!(task = %self.task.name, error = %e, "retention skipped"),
        }
    }
}
