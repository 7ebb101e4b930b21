//! History retention: rows older than a cutoff go, except what the rest of
//! ferry still reads: each line's newest row, rows still running, and (send
//! side) the rows that confirm a snapshot still on disk.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::db::{Result, Store, Ts};

impl Store {
    /// Deletes send rows that started before `cutoff`, except each task's
    /// newest row, any row still `running`, and any `succeeded` row whose
    /// `(task, snapshot)` is in `on_disk`: decision 5 reads "confirmed" from
    /// these rows, so losing one would make its snapshot look unconfirmed.
    /// Returns how many rows went.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails (busy past
    /// the timeout, disk full, a damaged file); nothing is deleted then.
    pub fn prune_send_history(
        &mut self,
        cutoff: DateTime<Utc>,
        on_disk: &HashSet<(String, String)>,
    ) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let candidates: Vec<(i64, String, Option<String>, String)> = {
            let mut stmt = tx.prepare(
                "SELECT id, task, snapshot, status FROM send_history
                 WHERE started_at < ?1 AND status != 'running'
                   AND id NOT IN (SELECT max(id) FROM send_history GROUP BY task)",
            )?;
            let rows = stmt.query_map([Ts(cutoff)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut deleted = 0;
        {
            let mut delete = tx.prepare("DELETE FROM send_history WHERE id = ?1")?;
            for (id, task, snapshot, status) in candidates {
                let confirms_a_held_snapshot =
                    status == "succeeded" && snapshot.is_some_and(|s| on_disk.contains(&(task, s)));
                if !confirms_a_held_snapshot {
                    deleted += delete.execute([id])?;
                }
            }
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// Deletes receive rows that started before `cutoff`, except the newest
    /// row of each (source, share, pool) line and any row still `running`.
    /// Replicas are not history: their table is untouched. Returns how many
    /// rows went.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails; nothing is
    /// deleted then.
    pub fn prune_receive_history(&mut self, cutoff: DateTime<Utc>) -> Result<usize> {
        let conn = self.conn();
        Ok(conn.execute(
            "DELETE FROM receive_history
             WHERE started_at < ?1 AND status != 'running'
               AND id NOT IN (SELECT max(id) FROM receive_history
                              GROUP BY coalesce(source_uuid, source), share, pool)",
            [Ts(cutoff)],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::db::in_memory;
    use super::super::{Finish, NewReceive, NewSend, Status};
    use super::*;
    use chrono::TimeDelta;

    fn send(store: &Store, task: &str, snapshot: &str, status: Status, days_ago: i64) -> i64 {
        let id = store
            .begin_send(&NewSend {
                task_id: None,
                task,
                target: "nas2",
                share: task,
            })
            .expect("row");
        let started = Ts(Utc::now() - TimeDelta::days(days_ago));
        store
            .conn()
            .execute(
                "UPDATE send_history SET started_at = ?2, snapshot = ?3 WHERE id = ?1",
                rusqlite::params![id, started, snapshot],
            )
            .expect("age");
        if status != Status::Running {
            store
                .finish_send_counted(
                    id,
                    &Finish {
                        status,
                        error: (status == Status::Failed).then_some("x"),
                        received_uuid: None,
                        bytes: None,
                    },
                )
                .expect("finish");
        }
        id
    }

    fn ids(store: &Store, table: &str) -> Vec<i64> {
        let conn = store.conn();
        let mut stmt = conn
            .prepare(&format!("SELECT id FROM {table} ORDER BY id"))
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<rusqlite::Result<_>>().expect("ids")
    }

    #[test]
    fn old_rows_go_but_never_the_newest_a_running_one_or_a_held_confirmation() {
        let mut store = in_memory();
        let held = send(&store, "a", "a_a_1", Status::Succeeded, 400);
        let old = send(&store, "a", "a_a_2", Status::Succeeded, 300);
        let failed = send(&store, "a", "a_a_3", Status::Failed, 200);
        let running = send(&store, "a", "a_a_4", Status::Running, 250);
        let recent = send(&store, "a", "a_a_5", Status::Failed, 10);
        // Task b's only row is ancient: it is b's newest, so it stays.
        let only = send(&store, "b", "b_b_1", Status::Failed, 1000);
        let on_disk = HashSet::from([("a".to_string(), "a_a_1".to_string())]);
        let cutoff = Utc::now() - TimeDelta::days(180);
        assert_eq!(
            store.prune_send_history(cutoff, &on_disk).expect("prune"),
            2
        );
        assert_eq!(ids(&store, "send_history"), [held, running, recent, only]);
        let _ = (old, failed);
    }

    #[test]
    fn receive_rows_keep_each_lines_newest() {
        let mut store = in_memory();
        let row = |share: &str| {
            store
                .begin_receive(&NewReceive {
                    source: "nas1",
                    source_uuid: None,
                    share,
                    pool: "backup",
                    snapshot: "s",
                    parent: None,
                    kind: crate::store::Kind::Full,
                })
                .expect("row")
        };
        let (a1, a2, b1) = (row("a"), row("a"), row("b"));
        store
            .conn()
            .execute(
                "UPDATE receive_history SET started_at = '2000-01-01T00:00:00.000Z', status = 'failed'",
                [],
            )
            .expect("age");
        let cutoff = Utc::now() - TimeDelta::days(180);
        assert_eq!(store.prune_receive_history(cutoff).expect("prune"), 1);
        assert_eq!(ids(&store, "receive_history"), [a2, b1]);
        let _ = a1;
    }
}
