//! `ferry status`: how far behind each task's replica is (the recovery point's
//! age), when it runs next, what is failing, and what is in flight.

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use super::ctx::Ctx;
use super::output::{
    bytes, elapsed, estimate_text, one_line, or_dash, outln, print_json, rate, span, time,
    write_stdout, Table,
};
use super::{check, Exit};
use crate::estimate::{estimate, Estimate};
use crate::health;
use crate::store::Basis;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (see the README for the fields).
    #[arg(long, conflicts_with = "check")]
    json: bool,
    /// Act as a monitoring plugin (Nagios, Icinga): exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN, with a summary line, a line per problem and perfdata.
    /// These exit codes hold only under --check.
    #[arg(long)]
    check: bool,
    /// With --check: the longest tolerable lag of every task and age of every
    /// replica line [default: twice the task's interval plus 10 minutes; for a
    /// replica line, twice the time between its two newest replicas plus 10 minutes].
    #[arg(long, requires = "check", value_name = "DURATION", value_parser = positive_duration)]
    max_lag: Option<std::time::Duration>,
    /// With --check: a task failing this many times in a row is a WARNING.
    #[arg(long, requires = "check", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    warn_failures: u32,
}

/// A duration as `--frequency` takes it ("90s", "2h", "1h30m"), longer than zero.
fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than 0s".to_string()),
        Err(e) => Err(format!("{e}; write e.g. 90m, 2h or 1d")),
    }
}

#[derive(Serialize)]
struct TaskStatus {
    task: String,
    target: String,
    enabled: bool,
    schedule: String,
    /// When the newest confirmed replica's snapshot was taken.
    last_success: Option<DateTime<Utc>>,
    /// The last time the replica was known to equal the share: `last_success`,
    /// or later, a run that found the share unchanged since that snapshot.
    current_at: Option<DateTime<Utc>>,
    /// Now minus `current_at`: how much would be lost if the source died now.
    lag_seconds: Option<i64>,
    next_run: Option<DateTime<Utc>>,
    failures_in_a_row: u32,
    last_error: Option<String>,
    /// What the last finished run warned about (nested subvolumes left out,
    /// bases skipped); empty when nothing.
    warnings: Vec<String>,
    in_flight: Option<InFlight>,
}

#[derive(Serialize)]
struct InFlight {
    snapshot: Option<String>,
    started_at: DateTime<Utc>,
    stream_bytes: u64,
    wire_bytes: u64,
    bytes_per_second: u64,
    /// Only when the run has a basis for one (see the README).
    estimate: Option<InFlightEstimate>,
}

/// An estimate of a running send and where its expected size came from.
#[derive(Serialize)]
struct InFlightEstimate {
    #[serde(flatten)]
    estimate: Estimate,
    basis: Basis,
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
    if args.check {
        let limits = check::Limits {
            max_lag: args.max_lag,
            warn_failures: args.warn_failures,
        };
        let report = match run_check(ctx, limits) {
            Ok(report) => report,
            Err(e) => check::unknown(&one_line(&e)),
        };
        write_stdout(format_args!("{}", report.text))?;
        return Err(Exit(report.state.code()).into());
    }
    let store = ctx.store()?;
    let now = Utc::now();
    refresh_replicas(&store);
    let tasks = health::tasks(&store, now)?
        .into_iter()
        .map(task_status)
        .collect();
    let replicas = health::replica_lines(&store, now)?
        .into_iter()
        .map(|l| ReplicaStatus {
            age_seconds: l.age_seconds,
            source: l.newest.source,
            share: l.newest.share,
            pool: l.newest.pool,
            newest: l.newest.snapshot,
            received_at: l.newest.received_at,
            replicas: l.count,
        })
        .collect();
    let status = StatusView { tasks, replicas };
    if args.json {
        return print_json(&status);
    }
    print_tasks(&status.tasks)?;
    if !status.replicas.is_empty() {
        outln!();
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
        table.print()?;
    }
    Ok(())
}

fn run_check(ctx: &Ctx, limits: check::Limits) -> anyhow::Result<check::Report> {
    let store = ctx.store()?;
    let now = Utc::now();
    refresh_replicas(&store);
    let tasks = health::tasks(&store, now)?;
    let lines = health::replica_lines(&store, now)?;
    Ok(check::evaluate(&tasks, &lines, limits, now))
}

/// Replicas deleted by hand leave the record (and `latest`) here, as at the
/// receiver's next Inventory; a failure only means the view may be stale.
fn refresh_replicas(store: &crate::store::Store) {
    if let Err(e) = crate::receiver::refresh(store) {
        tracing::warn!(error = %e, "cannot bring the replica record up to date");
    }
}

fn age(seconds: i64) -> String {
    elapsed(std::time::Duration::from_secs(
        seconds.max(0).unsigned_abs(),
    ))
}

fn print_tasks(tasks: &[TaskStatus]) -> anyhow::Result<()> {
    if tasks.is_empty() {
        outln!("no tasks on this appliance");
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
                        "{} at {}{}",
                        bytes(f.stream_bytes),
                        rate(f.stream_bytes, span(f.started_at, None)),
                        f.estimate
                            .as_ref()
                            .map(|e| format!(", {}", estimate_text(&e.estimate)))
                            .unwrap_or_default()
                    )
                })),
                t.last_error.clone().unwrap_or_default(),
            ]);
        }
        table.print()?;
        for t in tasks {
            for w in &t.warnings {
                outln!("task {}: warning: {w}", t.task);
            }
        }
    }
    Ok(())
}

fn task_status(h: health::TaskHealth) -> TaskStatus {
    let in_flight = h.in_flight.as_ref().map(|r| {
        let a = &r.attempt;
        let took = span(a.started_at, None);
        InFlight {
            snapshot: a.snapshot.clone(),
            started_at: a.started_at,
            stream_bytes: a.stream_bytes,
            wire_bytes: a.wire_bytes,
            bytes_per_second: (a.stream_bytes as f64 / took.as_secs_f64().max(0.001)) as u64,
            estimate: h.expected.and_then(|x| {
                estimate(x.bytes, a.stream_bytes, took).map(|estimate| InFlightEstimate {
                    estimate,
                    basis: x.basis,
                })
            }),
        }
    });
    TaskStatus {
        schedule: h
            .schedule
            .as_ref()
            .map_or_else(|| h.task.frequency.clone(), |s| s.to_string()),
        task: h.task.name,
        target: h.task.target,
        enabled: h.task.enabled,
        last_success: h.last_success,
        current_at: h.current_at,
        lag_seconds: h.lag_seconds,
        next_run: h.next_run,
        failures_in_a_row: h.failures_in_a_row,
        last_error: h.last_error,
        warnings: h.warnings,
        in_flight,
    }
}
