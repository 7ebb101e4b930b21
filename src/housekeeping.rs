//! The daemons' periodic maintenance (history retention, the receiver's audit)
//! as cron jobs of tokio-cron-scheduler, started and stopped with the daemon.
//!
//! Task schedules do not run here (docs/design.md, decision 8): chores need no
//! injectable clock, tolerate a late or an extra run, and never overlap with
//! themselves in a way that matters (each is one short transaction or walk).
//! Their cron expressions are evaluated in UTC: the crate fixes a zone's
//! offset when a job is created, so a zone would drift by an hour at each DST
//! change (mvniekerk/tokio-cron-scheduler#87).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio_cron_scheduler::{Job, JobScheduler};

/// What a chore reports: a line for the log, or why it failed.
pub type ChoreResult = Result<String, String>;

/// One run of a chore.
pub type ChoreRun =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ChoreResult> + Send>> + Send + Sync>;

/// A periodic job: its name (for logs), its cron expression (6 fields, seconds
/// first, UTC) and what it does.
#[derive(Clone)]
pub struct Chore {
    pub name: &'static str,
    pub cron: String,
    pub run: ChoreRun,
}

impl std::fmt::Debug for Chore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chore")
            .field("name", &self.name)
            .field("cron", &self.cron)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot start the housekeeping scheduler: {0}")]
    Start(String),
    #[error(
        "housekeeping job {name} has a schedule the job scheduler refuses ({cron:?}): {reason}"
    )]
    Schedule {
        name: &'static str,
        cron: String,
        reason: String,
    },
}

/// History retention: rows older than `keep_days` go (each daemon says which
/// it keeps regardless), at the times `cron` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// 6 fields, seconds first, UTC.
    pub cron: String,
    pub keep_days: u32,
}

impl Retention {
    /// The defaults: 180 days, pruned daily at 03:30 UTC.
    pub fn default_daily() -> Retention {
        Retention {
            cron: "0 30 3 * * *".to_string(),
            keep_days: 180,
        }
    }

    /// The oldest start time a row may have and stay.
    pub fn cutoff(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now.checked_sub_signed(chrono::TimeDelta::days(i64::from(self.keep_days)))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    }
}

/// The running job scheduler; [`Housekeeping::stop`] ends it.
pub struct Housekeeping {
    scheduler: JobScheduler,
}

/// How long stopping may take before the daemon goes on without waiting.
const STOP_WITHIN: Duration = Duration::from_secs(3);

impl Housekeeping {
    /// Starts `chores` on their schedules. A chore's failure (or panic) is
    /// logged with its name and the next run goes ahead as usual.
    ///
    /// # Errors
    ///
    /// [`Error::Schedule`] for a cron expression the crate refuses (config
    /// validation makes that rare), [`Error::Start`] if its scheduler cannot start.
    pub async fn start(chores: Vec<Chore>) -> Result<Housekeeping, Error> {
        let scheduler = JobScheduler::new()
            .await
            .map_err(|e| Error::Start(e.to_string()))?;
        for chore in chores {
            let Chore { name, cron, run } = chore;
            let job = Job::new_async(cron.as_str(), move |_, _| {
                let run = run.clone();
                Box::pin(async move {
                    // A panicking chore is a failed chore, not a dead daemon.
                    match tokio::spawn(run()).await {
                        Ok(Ok(done)) => tracing::info!(job = name, "housekeeping: {done}"),
                        Ok(Err(e)) => {
                            tracing::warn!(job = name, error = %e, "housekeeping job failed; it runs again at its next time")
                        }
                        Err(e) => {
                            tracing::error!(job = name, error = %e, "housekeeping job crashed; it runs again at its next time")
                        }
                    }
                })
            })
            .map_err(|e| Error::Schedule {
                name,
                cron: cron.clone(),
                reason: e.to_string(),
            })?;
            scheduler
                .add(job)
                .await
                .map_err(|e| Error::Start(e.to_string()))?;
            tracing::debug!(job = name, cron = %cron, "housekeeping job scheduled (UTC)");
        }
        scheduler
            .start()
            .await
            .map_err(|e| Error::Start(e.to_string()))?;
        Ok(Housekeeping { scheduler })
    }

    /// Stops the job scheduler; a job still running is left to finish on its own.
    pub async fn stop(mut self) {
        match tokio::time::timeout(STOP_WITHIN, self.scheduler.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "housekeeping did not stop cleanly"),
            Err(_) => tracing::warn!("housekeeping did not stop in time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting(
        name: &'static str,
        runs: Arc<AtomicU32>,
        outcome: fn(u32) -> ChoreResult,
    ) -> Chore {
        Chore {
            name,
            cron: "* * * * * *".to_string(),
            run: Arc::new(move || {
                let runs = runs.clone();
                Box::pin(async move { outcome(runs.fetch_add(1, Ordering::SeqCst)) })
            }),
        }
    }

    /// Every second, for a few real seconds: a chore that fails and one that
    /// panics keep being scheduled, and the healthy one beside them runs on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_panicking_job_is_logged_and_runs_again() {
        let (ok, failing, panicking) = (
            Arc::new(AtomicU32::new(0)),
            Arc::new(AtomicU32::new(0)),
            Arc::new(AtomicU32::new(0)),
        );
        let h = Housekeeping::start(vec![
            counting("ok", ok.clone(), |n| Ok(format!("run {n}"))),
            counting("failing", failing.clone(), |_| Err("no".into())),
            counting("panicking", panicking.clone(), |_| panic!("chore panicked")),
        ])
        .await
        .expect("start");
        tokio::time::sleep(Duration::from_millis(3500)).await;
        h.stop().await;
        for (name, runs) in [
            ("ok", &ok),
            ("failing", &failing),
            ("panicking", &panicking),
        ] {
            assert!(
                runs.load(Ordering::SeqCst) >= 2,
                "{name} ran {runs:?} times"
            );
        }
        // One already dispatched as stop came may still start; no later one.
        let after = ok.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let later = ok.load(Ordering::SeqCst);
        assert!(
            later <= after + 1,
            "jobs ran after stop: {after} then {later}"
        );
    }

    #[tokio::test]
    async fn a_schedule_the_crate_refuses_is_named() {
        let bad = Chore {
            name: "bad",
            cron: "not cron".to_string(),
            run: Arc::new(|| Box::pin(async { Ok(String::new()) })),
        };
        let err = Housekeeping::start(vec![bad]).await.err().expect("refused");
        assert!(err.to_string().contains("bad"), "{err}");
    }
}
