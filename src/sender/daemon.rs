//! `ferry sender`: runs every enabled task on its schedule, no two runs of a task
//! at once, at most `max_sends` at a time, retrying failures with backoff.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::chores;
use super::clock::{Clock, SystemClock};
use super::orphans::{fail_orphaned_rows, Orphans};
use super::slots::{Backoff, Fire, Outcome, Slot};
use super::{run_task, Error, RunOptions};
use crate::config::SenderSettings;
use crate::housekeeping::Retention;
use crate::schedule::{system_zone, Schedule};
use crate::state_lock::{self, StateLock};
use crate::store::{NewSend, Store};
use crate::wire::Throttle;

/// How often the database is checked for tasks the CLI added, edited or removed.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// How long running transfers get to record their interruption at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(8);

/// What the daemon did, for logs and for whoever waits on it (tests, `--events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Tasks were (re)read from the database.
    Loaded {
        tasks: usize,
    },
    /// The schedule was checked at this (clock) time.
    Checked {
        at: DateTime<Utc>,
    },
    /// A run is due and waits for one of the `max_sends` slots.
    Queued {
        task: String,
    },
    Started {
        task: String,
    },
    Finished {
        task: String,
        error: Option<String>,
        retry_at: Option<DateTime<Utc>>,
    },
    /// Due while the previous run was still going: recorded as skipped.
    Skipped {
        task: String,
    },
}

pub struct DaemonConfig {
    pub state_dir: PathBuf,
    pub settings: SenderSettings,
    pub clock: Arc<dyn Clock>,
    /// Send history retention, a housekeeping job; `None`: kept forever.
    pub history: Option<Retention>,
}

impl DaemonConfig {
    pub fn new(state_dir: PathBuf, settings: SenderSettings) -> Self {
        DaemonConfig {
            state_dir,
            settings,
            clock: Arc::new(SystemClock),
            history: Some(Retention::default_daily()),
        }
    }
}

/// The scheduler. Create it, `subscribe` if you want its events, then `run`.
pub struct Daemon {
    config: DaemonConfig,
    events: broadcast::Sender<Event>,
}

/// A finished run, with its send slot: the slot is given back only after the
/// daemon has recorded the outcome, so events never show more than
/// `max_sends` runs at once.
type Done = (i64, String, Result<(), Error>, OwnedSemaphorePermit);

impl Daemon {
    pub fn new(config: DaemonConfig) -> Self {
        Daemon {
            config,
            events: broadcast::Sender::new(1024),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Runs until `shutdown`; new `settings` (SIGHUP) apply to the next runs.
    /// Only a state database that cannot be opened at start is fatal: later
    /// database errors are logged and retried, so one busy moment does not
    /// stop every transfer.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the state database cannot be opened at start; nothing after
    /// that stops the loop.
    pub async fn run(
        self,
        shutdown: CancellationToken,
        mut settings: watch::Receiver<SenderSettings>,
    ) -> Result<(), Error> {
        let state_dir = self.config.state_dir.clone();
        let clock = self.config.clock.clone();
        let store = Store::open(&state_dir)?;
        // Held for the daemon's life; a second scheduler would fail this one's
        // running rows and run its tasks beside it.
        let _lock = StateLock::acquire(&state_dir, state_lock::Daemon::Sender)?;
        let housekeeping = chores::start(&state_dir, self.config.history.as_ref()).await;
        self.logged(
            "failing rows left running",
            fail_orphaned_rows(
                &store,
                Orphans::Unlocked {
                    state_dir: &state_dir,
                },
            )
            .map(drop),
        );
        let mut current = self.config.settings.clone();
        // The sender-wide bandwidth cap, shared by every send of this daemon.
        let cap = Throttle::new(current.bwlimit, current.bwlimit_window);
        let mut slots: HashMap<i64, Slot> = HashMap::new();
        let mut signature = String::new();
        self.reload(&store, &mut slots, &mut signature, true);

        // One semaphore for the life of the daemon; a new max_sends resizes it.
        let sends = Arc::new(Semaphore::new(permits(&current)));
        let runs_cancel = shutdown.child_token();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut runs = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, (i64, String)> = HashMap::new();
        let mut watch_tick = tokio::time::interval(WATCH_EVERY);
        watch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        info!(zone = %system_zone(), "cron schedules without --timezone follow this zone");
        loop {
            let now = clock.read();
            let mut due = Vec::new();
            for slot in slots.values_mut() {
                match slot.fire(now) {
                    None => {}
                    Some(Fire::Skip) => {
                        self.logged("recording a skipped run", self.skip(&store, slot))
                    }
                    Some(Fire::Run | Fire::Retry) => due.push(slot.task.id),
                }
            }
            // Runs wait for a send slot in this order (the semaphore is first
            // come, first served): the task whose last success is oldest first,
            // so no task starves while others keep succeeding.
            due.sort_by_key(|id| slots.get(id).map(|s| (s.succeeded, s.task.id)));
            for id in due {
                let Some(slot) = slots.get_mut(&id) else {
                    continue;
                };
                slot.running = true;
                let _ = self.events.send(Event::Queued {
                    task: slot.task.name.clone(),
                });
                let handle = runs.spawn(run_one(
                    state_dir.clone(),
                    slot.task.id,
                    slot.task.name.clone(),
                    run_options(&current, &cap),
                    sends.clone(),
                    runs_cancel.clone(),
                    done_tx.clone(),
                    self.events.clone(),
                ));
                running.insert(handle.id(), (slot.task.id, slot.task.name.clone()));
            }
            let _ = self.events.send(Event::Checked { at: now.wall });
            let wake = slots.values().filter_map(|s| s.wake_at(now)).min();
            let sleep = wake.map(|at| clock.sleep_until(at));
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = async { match sleep { Some(s) => s.await, None => std::future::pending().await } } => {}
                _ = watch_tick.tick() => self.reload(&store, &mut slots, &mut signature, false),
                Some((id, name, result, permit)) = done_rx.recv() => {
                    self.finished(&mut slots, id, name, result, &current);
                    drop(permit);
                }
                Some(joined) = runs.join_next_with_id() => {
                    // A run that panicked never reported: report it, or its task
                    // would count as running (and every tick skip) forever.
                    match joined {
                        Ok((tid, ())) => { running.remove(&tid); }
                        Err(e) => if let Some((id, name)) = running.remove(&e.id()) {
                            warn!(task = %name, error = %e, "a run crashed");
                            let crash = Err(Error::Crashed(e.to_string()));
                            self.finished(&mut slots, id, name, crash, &current);
                        },
                    }
                }
                Ok(()) = settings.changed() => {
                    let new = settings.borrow_and_update().clone();
                    resize(&sends, permits(&current), permits(&new));
                    // Running sends follow the new cap from their next piece.
                    cap.set(new.bwlimit, new.bwlimit_window);
                    current = new;
                    info!(max_sends = current.max_sends, "sender settings reloaded");
                }
            }
        }

        info!("sender stopping: interrupting running transfers");
        runs_cancel.cancel();
        let stopped = tokio::time::timeout(STOP_GRACE, async {
            while runs.join_next().await.is_some() {}
        });
        if stopped.await.is_err() {
            warn!("some runs did not stop in time; their rows are failed at the next start");
        }
        if let Some(h) = housekeeping {
            h.stop().await;
        }
        Ok(())
    }

    /// Re-reads the tasks when the CLI changed them (or when `force`d).
    fn reload(
        &self,
        store: &Store,
        slots: &mut HashMap<i64, Slot>,
        signature: &mut String,
        force: bool,
    ) {
        let changed = match store.tasks_signature() {
            Ok(now) if force || now != *signature => {
                *signature = now;
                true
            }
            Ok(_) => false,
            Err(e) => return warn!(error = %e, "cannot check the tasks for changes; retrying"),
        };
        if changed {
            self.logged("reading the tasks", self.load(store, slots));
        }
    }

    /// Logs a failed step of the loop; the loop goes on.
    fn logged(&self, what: &str, result: Result<(), Error>) {
        if let Err(e) = result {
            warn!(error = %e, "{what} failed; the scheduler goes on");
        }
    }

    /// Reads the tasks table into `slots`, keeping the state of tasks that stay.
    fn load(&self, store: &Store, slots: &mut HashMap<i64, Slot>) -> Result<(), Error> {
        let now = self.config.clock.read();
        let tasks = store.tasks()?;
        slots.retain(|id, _| tasks.iter().any(|t| t.id == *id));
        for task in tasks {
            let schedule = match Schedule::parse_in(&task.frequency, task.timezone.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(task = %task.name, error = %e, "task has an invalid schedule; not scheduling it");
                    slots.remove(&task.id);
                    continue;
                }
            };
            // One unreadable history row must not stop every task: this one
            // counts as never run, which at worst runs it once more.
            let last = store.last_send_started(&task.name).unwrap_or_else(|e| {
                warn!(task = %task.name, error = %e, "cannot read the task's last run; counting it as never run");
                None
            });
            match slots.get_mut(&task.id) {
                Some(slot)
                    if slot.task.frequency == task.frequency
                        && slot.task.timezone == task.timezone
                        && slot.task.enabled == task.enabled =>
                {
                    slot.task = task;
                }
                Some(slot) => {
                    slot.task = task;
                    slot.schedule = schedule;
                    slot.reschedule(now, last);
                }
                None => {
                    slots.insert(task.id, Slot::new(task, schedule, now, last));
                }
            }
        }
        let _ = self.events.send(Event::Loaded { tasks: slots.len() });
        Ok(())
    }

    fn skip(&self, store: &Store, slot: &Slot) -> Result<(), Error> {
        let task = &slot.task;
        let share = task.share_name();
        store.skipped_send(
            &NewSend {
                task_id: Some(task.id),
                task: &task.name,
                target: &task.target,
                share: &share,
            },
            "the previous run of this task was still in progress",
        )?;
        info!(task = %task.name, "skipped: the previous run is still in progress");
        let _ = self.events.send(Event::Skipped {
            task: task.name.clone(),
        });
        Ok(())
    }

    fn finished(
        &self,
        slots: &mut HashMap<i64, Slot>,
        id: i64,
        name: String,
        result: Result<(), Error>,
        settings: &SenderSettings,
    ) {
        let backoff = Backoff {
            first: settings.retry_first,
            max: settings.retry_max,
        };
        let now = self.config.clock.read();
        let mut retry_at = None;
        if let Some(slot) = slots.get_mut(&id) {
            let outcome = match &result {
                Ok(()) => Outcome::Succeeded,
                Err(e) if e.is_temporary() => Outcome::Temporary {
                    retry_after: e.retry_after(),
                },
                Err(_) => Outcome::Permanent,
            };
            slot.finished(now, outcome, backoff, fastrand::f64());
            retry_at = slot.retry_at.map(|at| now.wall_at(at));
        }
        if let (Err(e), Some(at)) = (&result, retry_at) {
            info!(task = %name, error = %e, retry_at = %at, "run failed; retrying");
        }
        let _ = self.events.send(Event::Finished {
            task: name,
            error: result.err().map(|e| e.to_string()),
            retry_at,
        });
    }
}

/// Grows or shrinks the send semaphore. Shrinking takes permits as runs give
/// them back, so running transfers finish and no new ones start past the limit.
fn resize(sends: &Arc<Semaphore>, old: usize, new: usize) {
    if new > old {
        sends.add_permits(new - old);
    } else if new < old {
        let sends = sends.clone();
        let excess = u32::try_from(old - new).unwrap_or(u32::MAX);
        tokio::spawn(async move {
            if let Ok(p) = sends.acquire_many_owned(excess).await {
                p.forget();
            }
        });
    }
}

/// What each run takes from the settings.
fn run_options(settings: &SenderSettings, cap: &Throttle) -> RunOptions {
    RunOptions {
        resume_for: settings.resume_for,
        keepalive: crate::wire::Keepalive::every(settings.keepalive),
        cap: cap.clone(),
        hooks: settings.hooks.clone(),
    }
}

fn permits(settings: &SenderSettings) -> usize {
    usize::try_from(settings.max_sends).unwrap_or(1).max(1)
}

/// Waits for a send slot, runs the task, reports back.
#[allow(clippy::too_many_arguments)]
async fn run_one(
    state_dir: PathBuf,
    id: i64,
    name: String,
    options: RunOptions,
    sends: Arc<Semaphore>,
    cancel: CancellationToken,
    done: mpsc::UnboundedSender<Done>,
    events: broadcast::Sender<Event>,
) {
    let permit = tokio::select! {
        p = sends.acquire_owned() => p,
        () = cancel.cancelled() => return,
    };
    let Ok(permit) = permit else { return };
    let _ = events.send(Event::Started { task: name.clone() });
    let result = run_task(&state_dir, &name, None, cancel, options)
        .await
        .map(|_| ());
    let _ = done.send((id, name, result, permit));
}
