//! `ferry status`: how far behind each task's replica is (the recovery point's
//! age), when it runs next, what is failing, and what is in flight.

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use super::ctx::Ctx;
use super::output::{bytes, elapsed, or_dash, print_json, rate, span, time, Table};
use crate::names;
use crate::schedule::Schedule;
use crate::store::{SendFilter, SendRow, Status, Store, Task};

/// History rows read per task to find its last success and failure streak.
const RECENT: u32 = 200;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TaskStatus {
    task: String,
    target: String,
    enabled: bool,
    schedule: String,
    /// When the newest confirmed replica's snapshot was taken.
    last_success: Option<DateTime<Utc>>,
    /// Now minus `last_success`: how much would be lost if the source died now.
    lag_seconds: Option<i64>,
    next_run: Option<DateTime<Utc>>,
    failures_in_a_row: u32,
    last_error: Option<String>,
    in_flight: Option<InFlight>,
}

#[derive(Serialize)]
struct InFlight {
    snapshot: Option<String>,
    started_at: DateTime<Utc>,
    stream_bytes: u64,
    wire_bytes: u64,
    bytes_per_second: u64,
}

/// What this appliance holds as a receiver, per source and share.
#[derive(Serialize)]
struct ReplicaStatus {
    source: String,
    share: String,
    pool: String,
    newest: String,
    received_at: DateTime<Utc>,
    /// Now minus `received_at`.
    age_seconds: i64,
    replicas: u32,
}

#[derive(Serialize)]
struct StatusView {
    tasks: Vec<TaskStatus>,
    replicas: Vec<ReplicaStatus>,
}

pub fn run(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let now = Utc::now();
    let tasks = store
        .tasks()?
        .iter()
        .map(|t| task_status(&store, t, now))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let replicas = store
        .newest_replicas()?
        .into_iter()
        .map(|(r, count)| ReplicaStatus {
            age_seconds: (now - r.received_at).num_seconds(),
            source: r.source,
            share: r.share,
            pool: r.pool,
            newest: r.snapshot,
            received_at: r.received_at,
            replicas: count,
        })
        .collect();
    let status = StatusView { tasks, replicas };
    if args.json {
        return print_json(&status);
    }
    print_tasks(&status.tasks);
    if !status.replicas.is_empty() {
        println!();
        let mut table = Table::new(&[
            "SOURCE", "SHARE", "POOL", "REPLICAS", "ARRIVED", "AGE", "NEWEST",
        ]);
        for r in &status.replicas {
            table.row(vec![
                r.source.clone(),
                r.share.clone(),
                r.pool.clone(),
                r.replicas.to_string(),
                time(r.received_at),
                age(r.age_seconds),
                r.newest.clone(),
            ]);
        }
        table.print();
    }
    Ok(())
}

fn age(seconds: i64) -> String {
    elapsed(std::time::Duration::from_secs(
        seconds.max(0).unsigned_abs(),
    ))
}

fn print_tasks(tasks: &[TaskStatus]) {
    if tasks.is_empty() {
        println!("no tasks on this appliance");
    } else {
        let mut table = Table::new(&[
            "TASK",
            "TARGET",
            "ENABLED",
            "LAST SUCCESS",
            "LAG",
            "NEXT RUN",
            "FAILURES",
            "IN FLIGHT",
            "LAST ERROR",
        ]);
        for t in tasks {
            table.row(vec![
                t.task.clone(),
                t.target.clone(),
                if t.enabled { "yes" } else { "no" }.to_string(),
                or_dash(t.last_success.map(time)),
                or_dash(
                    t.lag_seconds
                        .map(|s| elapsed(std::time::Duration::from_secs(s.max(0).unsigned_abs()))),
                ),
                or_dash(t.next_run.map(time)),
                t.failures_in_a_row.to_string(),
                or_dash(t.in_flight.as_ref().map(|f| {
                    format!(
                        "{} at {}",
                        bytes(f.stream_bytes),
                        rate(f.stream_bytes, span(f.started_at, None))
                    )
                })),
                t.last_error.clone().unwrap_or_default(),
            ]);
        }
        table.print();
    }
}

fn task_status(store: &Store, task: &Task, now: DateTime<Utc>) -> anyhow::Result<TaskStatus> {
    let rows = store.send_history(&SendFilter {
        task: Some(&task.name),
        limit: Some(RECENT),
    })?;
    let share = task.share_name();
    let last_success = rows
        .iter()
        .find(|r| r.attempt.status == Status::Succeeded)
        .and_then(|r| r.attempt.snapshot.as_deref())
        .and_then(|s| names::snapshot_time(&share, &task.name, s));
    let attempts = rows.iter().filter(|r| r.attempt.status != Status::Skipped);
    let failures: Vec<&SendRow> = attempts
        .clone()
        .filter(|r| r.attempt.status != Status::Running)
        .take_while(|r| r.attempt.status == Status::Failed)
        .collect();
    let schedule = Schedule::parse_in(&task.frequency, task.timezone.as_deref()).ok();
    let last_started = attempts.clone().next().map(|r| r.attempt.started_at);
    let next_run = task
        .enabled
        .then(|| {
            schedule
                .as_ref()
                .and_then(|s| s.next_due(now, last_started))
        })
        .flatten();
    let in_flight = rows
        .iter()
        .find(|r| r.attempt.status == Status::Running)
        .map(|r| {
            let took = span(r.attempt.started_at, None);
            InFlight {
                snapshot: r.attempt.snapshot.clone(),
                started_at: r.attempt.started_at,
                stream_bytes: r.attempt.stream_bytes,
                wire_bytes: r.attempt.wire_bytes,
                bytes_per_second: (r.attempt.stream_bytes as f64 / took.as_secs_f64().max(0.001))
                    as u64,
            }
        });
    Ok(TaskStatus {
        task: task.name.clone(),
        target: task.target.clone(),
        enabled: task.enabled,
        schedule: schedule.map_or_else(|| task.frequency.clone(), |s| s.to_string()),
        last_success,
        lag_seconds: last_success.map(|t| (now - t).num_seconds()),
        next_run,
        failures_in_a_row: u32::try_from(failures.len()).unwrap_or(u32::MAX),
        last_error: failures.first().and_then(|r| r.attempt.error.clone()),
        in_flight,
    })
}
