//! Send and receive history: one row per attempt, opened as `running` and finished
//! as `succeeded`, `failed` or `skipped` with the reason a person needs.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::attempt::{Attempt, Kind};

/// One send attempt, as `ferry history send` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendRow {
    pub id: i64,
    pub task: String,
    pub target: String,
    pub share: String,
    #[serde(flatten)]
    pub attempt: Attempt<Option<String>>,
    /// A `skipped` run that found the share unchanged since `snapshot`, which
    /// the target held: the replica equalled the share at `started_at`.
    pub unchanged: bool,
    /// What the attempt found that the user should know, one sentence each
    /// (nested subvolumes left out, bases skipped); empty when nothing.
    pub warnings: Vec<String>,
}

/// One receive attempt, as `ferry history receive` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiveRow {
    pub id: i64,
    pub source: String,
    pub source_uuid: Option<Uuid>,
    pub share: String,
    pub pool: String,
    #[serde(flatten)]
    pub attempt: Attempt<String>,
    /// Set while the receive is parked for a resume (its connection broke):
    /// when it is discarded unless resumed. The row stays `running` meanwhile.
    pub parked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewSend<'a> {
    pub task_id: Option<i64>,
    pub task: &'a str,
    pub target: &'a str,
    pub share: &'a str,
}

#[derive(Debug, Clone)]
pub struct NewReceive<'a> {
    pub source: &'a str,
    pub source_uuid: Option<Uuid>,
    pub share: &'a str,
    pub pool: &'a str,
    pub snapshot: &'a str,
    pub parent: Option<&'a str>,
    pub kind: Kind,
}

#[derive(Debug, Clone, Default)]
pub struct SendFilter<'a> {
    pub task: Option<&'a str>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct ReceiveFilter<'a> {
    pub source: Option<&'a str>,
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::{DateTime, Utc};

    use super::super::attempt::{Finish, Status};
    use super::super::db::in_memory;
    use super::*;

    fn send(task: &str) -> NewSend<'_> {
        NewSend {
            task_id: None,
            task,
            target: "nas2",
            share: "photos",
        }
    }

    #[test]
    fn a_send_row_goes_from_running_to_succeeded() {
        let store = in_memory();
        let id = store.begin_send(&send("photos")).expect("begin");
        store
            .set_send_plan(id, "photos_photos_20261121T053756Z", None, Kind::Full)
            .expect("plan");
        store.set_send_progress(id, 1000, 400).expect("progress");
        let u = Uuid::new_v4();
        store
            .finish_send(id, Status::Succeeded, None, Some(u))
            .expect("finish");
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.attempt.status, r.attempt.kind, r.attempt.received_uuid),
            (Status::Succeeded, Some(Kind::Full), Some(u))
        );
        assert_eq!((r.attempt.stream_bytes, r.attempt.wire_bytes), (1000, 400));
        assert!(r.attempt.ended_at.is_some());
    }

    #[test]
    fn filters_limit_and_order_newest_first() {
        let store = in_memory();
        for task in ["a", "b", "a", "a"] {
            store.begin_send(&send(task)).expect("begin");
        }
        let a = store
            .send_history(&SendFilter {
                task: Some("a"),
                limit: Some(2),
            })
            .expect("list");
        assert_eq!(a.iter().map(|r| r.id).collect::<Vec<_>>(), vec![4, 3]);
        assert!(store.has_send_history("b").expect("q"));
        assert!(!store.has_send_history("c").expect("q"));
    }

    #[test]
    fn a_closed_row_is_never_closed_again() {
        // Pins: a daemon failing "orphaned" rows must not overwrite a run that
        // finished between its look and its write.
        let store = in_memory();
        let id = store.begin_send(&send("a")).expect("begin");
        assert!(store
            .finish_send(id, Status::Succeeded, None, Some(Uuid::new_v4()))
            .expect("finish"));
        assert!(!store
            .finish_send(id, Status::Failed, Some("orphan"), None)
            .expect("second finish"));
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!(
            (rows[0].attempt.status, rows[0].attempt.error.as_deref()),
            (Status::Succeeded, None)
        );
    }

    #[test]
    fn running_rows_receive_crash_recovery_and_confirmed_uuids() {
        let store = in_memory();
        let done = store.begin_send(&send("a")).expect("begin");
        let u = Uuid::new_v4();
        store
            .finish_send_counted(
                done,
                &Finish {
                    status: Status::Succeeded,
                    error: None,
                    received_uuid: Some(u),
                    bytes: Some((10, 5)),
                },
            )
            .expect("finish");
        let running = store.begin_send(&send("a")).expect("begin");
        store
            .skipped_send(&send("a"), "previous run still going")
            .expect("skip");
        assert_eq!(
            store.running_sends().expect("q"),
            vec![(running, "a".to_string())]
        );
        assert_eq!(store.confirmed_uuids("a").expect("q"), HashSet::from([u]));
        assert!(store.confirmed_uuids("b").expect("q").is_empty());
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!(
            (rows[2].attempt.stream_bytes, rows[2].attempt.wire_bytes),
            (10, 5)
        );
        store
            .begin_receive(&NewReceive {
                source: "nas1",
                source_uuid: None,
                share: "photos",
                pool: "backup",
                snapshot: "s",
                parent: None,
                kind: Kind::Full,
            })
            .expect("receive");
        assert_eq!(store.fail_running_receives("crashed").expect("fail"), 1);
        let rx = store
            .receive_history(&ReceiveFilter::default())
            .expect("list");
        assert_eq!(
            (rx[0].attempt.status, rx[0].attempt.error.as_deref()),
            (Status::Failed, Some("crashed"))
        );
    }

    #[test]
    fn progress_never_rewrites_a_closed_row() {
        // Progress is written off the data path and may land after the close.
        let store = in_memory();
        let id = store.begin_send(&send("a")).expect("begin");
        let done = Finish {
            status: Status::Succeeded,
            error: None,
            received_uuid: Some(Uuid::new_v4()),
            bytes: Some((10, 5)),
        };
        store.finish_send_counted(id, &done).expect("finish");
        store.set_send_progress(id, 7, 3).expect("late progress");
        let rows = store.send_history(&SendFilter::default()).expect("list");
        let a = &rows[0].attempt;
        assert_eq!((a.stream_bytes, a.wire_bytes), (10, 5));
    }

    #[test]
    fn a_failure_always_carries_a_reason() {
        let store = in_memory();
        let id = store.begin_send(&send("a")).expect("begin");
        store
            .finish_send(id, Status::Failed, None, None)
            .expect("finish");
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!(rows[0].attempt.error.as_deref(), Some("no reason recorded"));
    }

    #[test]
    fn history_json_keeps_its_keys_and_their_order() {
        // Pins `ferry history send|receive --json`: scripts read these keys.
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let u = Uuid::parse_str("9b2a1c3e-0000-4000-8000-000000000001").expect("uuid");
        let send = SendRow {
            id: 7,
            task: "photos".into(),
            target: "nas2".into(),
            share: "photos".into(),
            attempt: Attempt {
                snapshot: Some("photos_photos_20261121T053756Z".into()),
                parent: None,
                kind: Some(Kind::Full),
                status: Status::Succeeded,
                error: None,
                started_at: at("2026-11-21T05:37:56Z"),
                ended_at: Some(at("2026-11-21T05:38:01.5Z")),
                stream_bytes: 1000,
                wire_bytes: 400,
                received_uuid: Some(u),
                resumed_from: 0,
                stream_version: Some(2),
            },
            unchanged: false,
            warnings: vec!["nested subvolumes are not replicated".into()],
        };
        assert_eq!(
            serde_json::to_string(&send).expect("json"),
            r#"{"id":7,"task":"photos","target":"nas2","share":"photos","snapshot":"photos_photos_20261121T053756Z","parent":null,"kind":"full","status":"succeeded","error":null,"started_at":"2026-11-21T05:37:56Z","ended_at":"2026-11-21T05:38:01.500Z","stream_bytes":1000,"wire_bytes":400,"received_uuid":"9b2a1c3e-0000-4000-8000-000000000001","resumed_from":0,"stream_version":2,"unchanged":false,"warnings":["nested subvolumes are not replicated"]}"#
        );
        let receive = ReceiveRow {
            id: 3,
            source: "nas1".into(),
            source_uuid: Some(u),
            share: "photos".into(),
            pool: "backup".into(),
            attempt: Attempt {
                snapshot: "s2".into(),
                parent: Some("s1".into()),
                kind: Some(Kind::Incremental),
                status: Status::Failed,
                error: Some("disk full".into()),
                started_at: at("2026-11-21T05:37:56Z"),
                ended_at: None,
                stream_bytes: 10,
                wire_bytes: 5,
                received_uuid: None,
                resumed_from: 4096,
                stream_version: None,
            },
            parked_until: Some(at("2026-11-21T05:52:56Z")),
        };
        assert_eq!(
            serde_json::to_string(&receive).expect("json"),
            r#"{"id":3,"source":"nas1","source_uuid":"9b2a1c3e-0000-4000-8000-000000000001","share":"photos","pool":"backup","snapshot":"s2","parent":"s1","kind":"incremental","status":"failed","error":"disk full","started_at":"2026-11-21T05:37:56Z","ended_at":null,"stream_bytes":10,"wire_bytes":5,"received_uuid":null,"resumed_from":4096,"stream_version":null,"parked_until":"2026-11-21T05:52:56Z"}"#
        );
    }

    #[test]
    fn warnings_are_kept_in_order_whatever_the_status() {
        let store = in_memory();
        let id = store.begin_send(&send("photos")).expect("begin");
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert!(rows[0].warnings.is_empty());
        store
            .add_send_warning(id, "first \"quoted\"")
            .expect("warn");
        store.add_send_warning(id, "second").expect("warn");
        store
            .finish_send(id, Status::Failed, Some("boom"), None)
            .expect("finish");
        let rows = store.send_history(&SendFilter::default()).expect("list");
        assert_eq!(rows[0].warnings, ["first \"quoted\"", "second"]);
    }
}
