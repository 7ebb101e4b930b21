//! The sender's metrics: per task its recovery point, lag, failure streak and
//! next run; sends counted by outcome; stream and wire bytes; bytes in flight.

use std::path::PathBuf;
use std::sync::Mutex;

use chrono::Utc;
use prometheus_client::registry::Registry;

use super::scrape::{counters, gauges, int, labels, register_build_info, Error, Scrape};
use super::tally::Tally;
use crate::health;
use crate::store::{History, Store};

/// Scrapes the sender's state database.
pub struct SenderMetrics {
    state_dir: PathBuf,
    /// The store and the counters read from it so far, together.
    state: Mutex<Option<(Store, Tally)>>,
}

impl SenderMetrics {
    pub fn new(state_dir: PathBuf) -> SenderMetrics {
        SenderMetrics {
            state_dir,
            state: Mutex::new(None),
        }
    }
}

impl Scrape for SenderMetrics {
    fn registry(&self) -> Result<Registry, Error> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some((Store::open(&self.state_dir)?, Tally::new(History::Send)));
        }
        let Some((store, tally)) = guard.as_mut() else {
            unreachable!("set just above")
        };
        tally.update(store)?;
        let now = Utc::now();
        let tasks = health::tasks(store, now)?;

        let mut r = Registry::default();
        register_build_info(&mut r);
        let last = gauges(
            &mut r,
            "ferry_task_last_success_timestamp_seconds",
            "When the newest snapshot a target confirmed was taken (Unix time)",
        );
        let lag = gauges(
            &mut r,
            "ferry_task_lag_seconds",
            "Age of the newest confirmed snapshot: what would be lost if the source died now",
        );
        let failures = gauges(
            &mut r,
            "ferry_task_failures_in_a_row",
            "Failed runs since the task's last success",
        );
        let next = gauges(
            &mut r,
            "ferry_task_next_run_timestamp_seconds",
            "The task's next regular run (Unix time); absent while disabled",
        );
        let enabled = gauges(&mut r, "ferry_task_enabled", "1 if the task is enabled");
        let interval = gauges(
            &mut r,
            "ferry_task_interval_seconds",
            "How often the task runs (a cron schedule's longest gap)",
        );
        let in_flight = gauges(
            &mut r,
            "ferry_send_in_flight_bytes",
            "Send stream bytes of the run in progress (0 when none)",
        );
        for t in &tasks {
            let l = labels(&[("task", &t.task.name)]);
            if let Some(at) = t.last_success {
                last.get_or_create(&l).set(at.timestamp());
            }
            if let Some(s) = t.lag_seconds {
                lag.get_or_create(&l).set(s);
            }
            failures
                .get_or_create(&l)
                .set(i64::from(t.failures_in_a_row));
            if let Some(at) = t.next_run {
                next.get_or_create(&l).set(at.timestamp());
            }
            enabled.get_or_create(&l).set(i64::from(t.task.enabled));
            if let Some(i) = t.interval {
                interval.get_or_create(&l).set(int(i.as_secs()));
            }
            let bytes = t.in_flight.as_ref().map_or(0, |r| r.attempt.stream_bytes);
            in_flight.get_or_create(&l).set(int(bytes));
        }

        let runs = counters(
            &mut r,
            "ferry_send_runs",
            "Finished send attempts by outcome (succeeded, failed, skipped)",
        );
        for ((key, status), n) in &tally.runs {
            let task = key.first().map_or("", String::as_str);
            runs.get_or_create(&labels(&[("task", task), ("status", status)]))
                .inc_by(*n);
        }
        let stream = counters(
            &mut r,
            "ferry_send_stream_bytes",
            "Uncompressed send stream bytes of finished runs",
        );
        let wire = counters(
            &mut r,
            "ferry_send_wire_bytes",
            "Bytes on the wire (compressed) of finished runs",
        );
        for (key, (s, w)) in &tally.bytes {
            let l = labels(&[("task", key.first().map_or("", String::as_str))]);
            stream.get_or_create(&l).inc_by(*s);
            wire.get_or_create(&l).inc_by(*w);
        }
        Ok(r)
    }
}
