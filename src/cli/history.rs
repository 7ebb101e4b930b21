//! `ferry history send|receive`: every attempt, newest first, with sizes and rates.

use clap::{Args, Subcommand};

use super::ctx::{bad_input, Ctx};
use super::history_restore::{self, RestoreArgs};
use super::output::{bytes, elapsed, or_dash, outln, print_json, rate, span, time, Table};
use super::values;
use crate::store::{Attempt, ReceiveFilter, SendFilter};

/// Rows shown when --limit is not given.
const DEFAULT_LIMIT: u32 = 20;

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// What this appliance sent.
    Send(SendArgs),
    /// What this appliance received.
    Receive(ReceiveArgs),
    /// The replicas `ferry replica restore` copied, and where to.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Only this task's sends (deleted tasks too).
    #[arg(long)]
    task: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Only what this appliance received from that source appliance.
    #[arg(long)]
    source: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct Common {
    /// How many rows, newest first.
    #[arg(long, default_value_t = DEFAULT_LIMIT, allow_negative_numbers = true, value_parser = values::count)]
    limit: u32,
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, cmd: HistoryCommand) -> anyhow::Result<()> {
    match cmd {
        HistoryCommand::Send(args) => send(ctx, args),
        HistoryCommand::Receive(args) => receive(ctx, args),
        HistoryCommand::Restore(args) => history_restore::list(ctx, &args),
    }
}

fn send(ctx: &Ctx, args: SendArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    if let Some(task) = &args.task {
        if store.task(task)?.is_none() && !store.has_send_history(task)? {
            bad_input!(
                "no task named {task}, and no history for one; `ferry task list` shows the tasks"
            );
        }
    }
    let rows = store.send_history(&SendFilter {
        task: args.task.as_deref(),
        limit: Some(args.common.limit),
    })?;
    if args.common.json {
        return print_json(&rows);
    }
    let mut table = attempt_table(&["TASK", "TARGET"]);
    for r in &rows {
        let snapshot = or_dash(r.attempt.snapshot.clone());
        let own = [r.task.clone(), r.target.clone()];
        let last = note(r.attempt.error.as_deref(), &r.warnings);
        table.row(attempt_row(r.id, &r.attempt, &own, snapshot, last));
    }
    print_or_empty(&table, rows.is_empty(), "no sends recorded yet")
}

fn receive(ctx: &Ctx, args: ReceiveArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    if let Some(source) = &args.source {
        if store.appliance(source)?.is_none() && !store.has_receive_history(source)? {
            bad_input!("no appliance named {source}, and no history from one; `ferry appliance list` shows them");
        }
    }
    let rows = store.receive_history(&ReceiveFilter {
        source: args.source.as_deref(),
        limit: Some(args.common.limit),
    })?;
    if args.common.json {
        return print_json(&rows);
    }
    let mut table = attempt_table(&["SOURCE", "SHARE", "POOL"]);
    for r in &rows {
        let own = [r.source.clone(), r.share.clone(), r.pool.clone()];
        let snapshot = r.attempt.snapshot.clone();
        let last = r.attempt.error.clone().unwrap_or_default();
        table.row(attempt_row(r.id, &r.attempt, &own, snapshot, last));
    }
    print_or_empty(&table, rows.is_empty(), "no receives recorded yet")
}

/// A history table: ID and STARTED, the row kind's own columns, then the
/// attempt's (see [`attempt_row`]).
fn attempt_table(own: &[&str]) -> Table {
    let attempt = [
        "KIND", "STATUS", "SIZE", "WIRE", "RATE", "TIME", "SNAPSHOT", "ERROR",
    ];
    Table::new(&[&["ID", "STARTED"][..], own, &attempt].concat())
}

/// One row of an [`attempt_table`]; `snapshot` as the row kind shows its name,
/// `last` what goes under ERROR.
fn attempt_row<S>(
    id: i64,
    a: &Attempt<S>,
    own: &[String],
    snapshot: String,
    last: String,
) -> Vec<String> {
    let took = span(a.started_at, a.ended_at);
    let mut cells = vec![id.to_string(), time(a.started_at)];
    cells.extend_from_slice(own);
    cells.extend([
        or_dash(a.kind),
        a.status.to_string(),
        bytes(a.stream_bytes),
        bytes(a.wire_bytes),
        rate(a.stream_bytes, took),
        elapsed(took),
        snapshot,
        last,
    ]);
    cells
}

/// What a send row shows under ERROR: its error, then its warnings.
fn note(error: Option<&str>, warnings: &[String]) -> String {
    error
        .into_iter()
        .map(str::to_owned)
        .chain(warnings.iter().map(|w| format!("warning: {w}")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn print_or_empty(table: &Table, empty: bool, message: &str) -> anyhow::Result<()> {
    if empty {
        outln!("{message}");
    } else {
        table.print()?;
    }
    Ok(())
}
