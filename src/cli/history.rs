//! `ferry history send|receive`: every attempt, newest first, with sizes and rates.

use clap::{Args, Subcommand};

use super::ctx::{bad_input, Ctx};
use super::output::{bytes, elapsed, or_dash, print_json, rate, span, time, Table};
use crate::store::{ReceiveFilter, SendFilter};

/// Rows shown when --limit is not given.
const DEFAULT_LIMIT: u32 = 20;

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// What this appliance sent.
    Send(SendArgs),
    /// What this appliance received.
    Receive(ReceiveArgs),
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
    #[arg(long, default_value_t = DEFAULT_LIMIT, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, cmd: HistoryCommand) -> anyhow::Result<()> {
    match cmd {
        HistoryCommand::Send(args) => send(ctx, args),
        HistoryCommand::Receive(args) => receive(ctx, args),
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
    let mut table = Table::new(&[
        "ID", "STARTED", "TASK", "TARGET", "KIND", "STATUS", "SIZE", "WIRE", "RATE", "TIME",
        "SNAPSHOT", "ERROR",
    ]);
    for r in &rows {
        let took = span(r.attempt.started_at, r.attempt.ended_at);
        table.row(vec![
            r.id.to_string(),
            time(r.attempt.started_at),
            r.task.clone(),
            r.target.clone(),
            or_dash(r.attempt.kind),
            r.attempt.status.to_string(),
            bytes(r.attempt.stream_bytes),
            bytes(r.attempt.wire_bytes),
            rate(r.attempt.stream_bytes, took),
            elapsed(took),
            or_dash(r.attempt.snapshot.clone()),
            r.attempt.error.clone().unwrap_or_default(),
        ]);
    }
    print_or_empty(&table, rows.is_empty(), "no sends recorded yet");
    Ok(())
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
    let mut table = Table::new(&[
        "ID", "STARTED", "SOURCE", "SHARE", "POOL", "KIND", "STATUS", "SIZE", "WIRE", "RATE",
        "TIME", "SNAPSHOT", "ERROR",
    ]);
    for r in &rows {
        let took = span(r.attempt.started_at, r.attempt.ended_at);
        table.row(vec![
            r.id.to_string(),
            time(r.attempt.started_at),
            r.source.clone(),
            r.share.clone(),
            r.pool.clone(),
            or_dash(r.attempt.kind),
            r.attempt.status.to_string(),
            bytes(r.attempt.stream_bytes),
            bytes(r.attempt.wire_bytes),
            rate(r.attempt.stream_bytes, took),
            elapsed(took),
            r.attempt.snapshot.clone(),
            r.attempt.error.clone().unwrap_or_default(),
        ]);
    }
    print_or_empty(&table, rows.is_empty(), "no receives recorded yet");
    Ok(())
}

fn print_or_empty(table: &Table, empty: bool, message: &str) {
    if empty {
        println!("{message}");
    } else {
        table.print();
    }
}
