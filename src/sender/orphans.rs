//! Send rows a stopped process left `running`: failed with one reason, by the run
//! or the daemon that notices first. A row is dead when no one holds its task's lock.

use std::path::Path;

use tracing::warn;

use super::error::Error;
use super::lock::TaskLock;
use crate::store::{Status, Store};

/// The reason recorded on a row whose process stopped before the run finished.
pub(super) const STOPPED: &str =
    "interrupted: the sending process stopped before this run finished";

/// Which `running` rows are known to belong to a dead run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Orphans<'a> {
    /// This task's rows: the caller holds the task's lock, so no live run owns them.
    OfLockedTask(&'a str),
    /// Every task's rows whose lock is free right now (checked per task, and held
    /// while its row is closed). A `ferry task run` going on owns its row.
    Unlocked { state_dir: &'a Path },
}

/// Fails the orphaned rows; returns how many it closed. A row that its run
/// closed meanwhile is left as that run recorded it.
///
/// # Errors
///
/// [`Error::Store`] when the history cannot be read or written, and
/// [`Error::Lock`] when a task's lock file cannot be opened.
pub(super) fn fail_orphaned_rows(store: &Store, which: Orphans<'_>) -> Result<usize, Error> {
    let mut failed = 0;
    for (id, task) in store.running_sends()? {
        let _lock = match which {
            Orphans::OfLockedTask(held) if task == held => None,
            Orphans::OfLockedTask(_) => continue,
            Orphans::Unlocked { state_dir } => match TaskLock::try_acquire(state_dir, &task)
                .map_err(|source| Error::Lock {
                    task: task.clone(),
                    source,
                })? {
                Some(lock) => Some(lock),
                None => continue,
            },
        };
        if store.finish_send(id, Status::Failed, Some(STOPPED), None)? {
            failed += 1;
            warn!(task = %task, row = id, "marked a run left running by a stopped process as failed");
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewSend, SendFilter};

    fn row(store: &Store, task: &str) -> i64 {
        let new = NewSend {
            task_id: None,
            task,
            target: "nas2",
            share: "photos",
        };
        store.begin_send(&new).expect("begin")
    }

    fn status(store: &Store, id: i64) -> (Status, Option<String>) {
        let rows = store.send_history(&SendFilter::default()).expect("history");
        let r = rows.into_iter().find(|r| r.id == id).expect("row");
        (r.attempt.status, r.attempt.error)
    }

    #[test]
    fn a_run_fails_only_its_own_tasks_rows() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::create(dir.path()).expect("store");
        let (mine, other) = (row(&store, "a"), row(&store, "b"));
        let failed = fail_orphaned_rows(&store, Orphans::OfLockedTask("a")).expect("fail");
        assert_eq!(failed, 1);
        assert_eq!(status(&store, mine), (Status::Failed, Some(STOPPED.into())));
        assert_eq!(status(&store, other).0, Status::Running);
    }

    #[test]
    fn the_daemon_leaves_rows_whose_task_lock_is_held() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::create(dir.path()).expect("store");
        let (dead, live) = (row(&store, "a"), row(&store, "b"));
        let _running = TaskLock::try_acquire(dir.path(), "b")
            .expect("lock")
            .expect("free");
        let which = Orphans::Unlocked {
            state_dir: dir.path(),
        };
        assert_eq!(fail_orphaned_rows(&store, which).expect("fail"), 1);
        assert_eq!(status(&store, dead).0, Status::Failed);
        assert_eq!(status(&store, live).0, Status::Running);
        // Nothing is closed twice.
        assert_eq!(fail_orphaned_rows(&store, which).expect("again"), 0);
    }
}
