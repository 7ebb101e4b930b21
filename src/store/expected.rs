//! What a running send expects its stream to come to, recorded on its row once
//! its plan is known: the basis of the progress estimate `status` and `task run` show.

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::attempt::{Basis, Kind};
use super::db::{Result, Store};

/// A send's expected stream size: an estimate, never a promise (a stream may
/// come out larger or smaller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// Bytes of the btrfs send stream, uncompressed.
    pub bytes: u64,
    /// Where the figure came from.
    pub basis: Basis,
}

impl Store {
    /// Records what running send row `id` expects to send; a closed row is
    /// left as it is.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn set_send_expected(&self, id: i64, expected: Expected) -> Result<()> {
        self.conn().execute(
            "UPDATE send_history SET expected_bytes = ?2, expected_basis = ?3
             WHERE id = ?1 AND status = 'running'",
            (
                id,
                i64::try_from(expected.bytes).unwrap_or(i64::MAX),
                expected.basis,
            ),
        )?;
        Ok(())
    }

    /// What send row `id` expected to send; `None` when it had no basis (or
    /// there is no such row).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn send_expected(&self, id: i64) -> Result<Option<Expected>> {
        let found = self
            .conn()
            .query_row(
                "SELECT expected_bytes, expected_basis FROM send_history
                 WHERE id = ?1 AND expected_bytes IS NOT NULL AND expected_basis IS NOT NULL",
                [id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Basis>(1)?)),
            )
            .optional()?;
        Ok(found.map(|(bytes, basis)| Expected {
            bytes: u64::try_from(bytes).unwrap_or(0),
            basis,
        }))
    }

    /// The stream size of task `task_id`'s last succeeded send of `kind`
    /// (a resumed one counts whole), by row order; `None` before the first.
    /// Rows of a deleted namesake task do not count.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails.
    pub fn last_stream(&self, task_id: i64, kind: Kind) -> Result<Option<u64>> {
        let found = self
            .conn()
            .query_row(
                "SELECT stream_bytes FROM send_history
                 WHERE task_id = ?1 AND kind = ?2 AND status = 'succeeded' AND stream_bytes > 0
                 ORDER BY id DESC LIMIT 1",
                (task_id, kind),
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        Ok(found.and_then(|b| u64::try_from(b).ok()))
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::super::attempt::Status;
    use super::super::db::in_memory;
    use super::super::history::NewSend;
    use super::*;

    /// A store whose send rows may name task ids without adding tasks and
    /// appliances: what is under test is the choice among rows.
    fn store() -> Store {
        let store = in_memory();
        store
            .conn()
            .execute_batch("PRAGMA foreign_keys = OFF")
            .expect("pragma");
        store
    }

    fn send(store: &Store, task_id: i64, kind: Kind, bytes: u64, status: Status) -> i64 {
        let id = store
            .begin_send(&NewSend {
                task_id: Some(task_id),
                task: "photos",
                target: "nas2",
                share: "photos",
            })
            .expect("begin");
        store
            .set_send_plan(id, &format!("photos_{id}"), None, kind)
            .expect("plan");
        store.set_send_progress(id, bytes, bytes).expect("progress");
        if status != Status::Running {
            let uuid = (status == Status::Succeeded).then(Uuid::new_v4);
            let error = (status == Status::Failed).then_some("lost");
            store.finish_send(id, status, error, uuid).expect("finish");
        }
        id
    }

    #[test]
    fn the_last_stream_is_the_last_success_of_the_same_task_and_kind() {
        let store = store();
        assert_eq!(store.last_stream(1, Kind::Incremental).expect("q"), None);
        send(&store, 1, Kind::Full, 9000, Status::Succeeded);
        send(&store, 1, Kind::Incremental, 300, Status::Succeeded);
        send(&store, 1, Kind::Incremental, 500, Status::Succeeded);
        // Neither a failure, another task, nor a run in progress counts.
        send(&store, 1, Kind::Incremental, 7, Status::Failed);
        send(&store, 2, Kind::Incremental, 8, Status::Succeeded);
        send(&store, 1, Kind::Incremental, 9, Status::Running);
        assert_eq!(
            store.last_stream(1, Kind::Incremental).expect("q"),
            Some(500)
        );
        assert_eq!(store.last_stream(1, Kind::Full).expect("q"), Some(9000));
        assert_eq!(store.last_stream(3, Kind::Full).expect("q"), None);
    }

    #[test]
    fn an_expectation_is_recorded_on_a_running_row_only() {
        let store = store();
        let running = send(&store, 1, Kind::Full, 0, Status::Running);
        let closed = send(&store, 1, Kind::Full, 10, Status::Succeeded);
        let e = Expected {
            bytes: 4096,
            basis: Basis::Referenced,
        };
        store.set_send_expected(running, e).expect("set");
        store.set_send_expected(closed, e).expect("set");
        assert_eq!(store.send_expected(running).expect("q"), Some(e));
        assert_eq!(store.send_expected(closed).expect("q"), None);
    }
}
