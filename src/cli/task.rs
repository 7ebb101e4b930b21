//! `ferry task list|show|enable|disable|delete` (and `add`, in `task_add`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::ctx::{bad_input, existing, Ctx};
use super::output::{compression, or_dash, outln, print_fields, print_json, time, Table};
use super::task_add::{self, AddArgs};
use super::task_prune::{self, PruneArgs};
use super::task_run;
use super::task_set::{self, SetArgs};
use crate::btrfs;
use crate::schedule::Schedule;
use crate::sender::{self, TaskLock};
use crate::store::{SendCompressed, SendFilter, Status, Store, Task};

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Replicate a share to an appliance's pool on a schedule.
    Add(Box<AddArgs>),
    /// Change a task's settings (schedule, retention, compression, ports, hooks).
    Set(Box<SetArgs>),
    /// List tasks with their last result.
    List(JsonArg),
    /// Show one task in full.
    Show {
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Resume a disabled task's schedule.
    Enable { name: String },
    /// Pause a task's schedule (its snapshots and history stay).
    Disable { name: String },
    /// Delete a task. Its snapshots stay unless --purge-snapshots; its history stays.
    Delete(DeleteArgs),
    /// Show (--dry-run) or apply a task's retention, here and on its target.
    Prune(PruneArgs),
    /// Run a task once now (exit 0 only when the target confirmed it).
    Run {
        name: String,
        /// Show a progress bar (bytes, rate, elapsed) when stderr is a terminal.
        #[arg(long)]
        progress: bool,
    },
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    name: String,
    /// Confirm the deletion.
    #[arg(long)]
    yes: bool,
    /// Also delete the task's snapshots on this appliance (replicas on the target stay).
    #[arg(long)]
    purge_snapshots: bool,
}

/// A task as `list --json` and `show --json` print it.
#[derive(Serialize)]
struct TaskView<'a> {
    name: &'a str,
    share: &'a std::path::Path,
    target: &'a str,
    pool: &'a str,
    frequency: &'a str,
    /// `--timezone`; `None`: the system's zone.
    timezone: Option<&'a str>,
    schedule: String,
    enabled: bool,
    meta_port: Option<u16>,
    data_port: Option<u16>,
    keep_source: u32,
    keep_target: u32,
    preserve_source: &'a str,
    preserve_target: &'a str,
    skip_unchanged: bool,
    /// `null`: the config's default; `""`: none for this task.
    pre_snapshot: Option<&'a str>,
    post_snapshot: Option<&'a str>,
    on_success: Option<&'a str>,
    on_failure: Option<&'a str>,
    snapshot_dir: &'a std::path::Path,
    compress: i32,
    compress_auto: bool,
    /// Bytes per second on the wire; 0: none.
    bwlimit: u64,
    send_compressed: SendCompressed,
    /// The replica line's name on the target.
    replica_name: String,
    created_at: chrono::DateTime<chrono::Utc>,
    last_status: Option<Status>,
    last_run: Option<chrono::DateTime<chrono::Utc>>,
    last_error: Option<String>,
}

impl<'a> TaskView<'a> {
    fn new(store: &Store, t: &'a Task) -> anyhow::Result<Self> {
        let last = store
            .send_history(&SendFilter {
                task: Some(&t.name),
                limit: Some(1),
            })?
            .into_iter()
            .next();
        Ok(TaskView {
            name: &t.name,
            share: &t.share,
            target: &t.target,
            pool: &t.pool,
            frequency: &t.frequency,
            timezone: t.timezone.as_deref(),
            schedule: Schedule::parse_in(&t.frequency, t.timezone.as_deref())
                .map_or_else(|e| format!("invalid: {e}"), |s| s.to_string()),
            enabled: t.enabled,
            meta_port: t.meta_port,
            data_port: t.data_port,
            keep_source: t.keep_source,
            keep_target: t.keep_target,
            preserve_source: &t.preserve_source,
            preserve_target: &t.preserve_target,
            skip_unchanged: t.skip_unchanged,
            pre_snapshot: t.hooks.pre_snapshot.as_deref(),
            post_snapshot: t.hooks.post_snapshot.as_deref(),
            on_success: t.hooks.on_success.as_deref(),
            on_failure: t.hooks.on_failure.as_deref(),
            snapshot_dir: &t.snapshot_dir,
            compress: t.compress,
            compress_auto: t.compress_auto,
            bwlimit: t.bwlimit,
            send_compressed: t.send_compressed,
            replica_name: t.share_name(),
            created_at: t.created_at,
            last_status: last.as_ref().map(|r| r.attempt.status),
            last_run: last.as_ref().map(|r| r.attempt.started_at),
            // A skipped run's reason (`no change since ...`) is no error:
            // only a failed run has one, as in `status`.
            last_error: last
                .filter(|r| r.attempt.status == Status::Failed)
                .and_then(|r| r.attempt.error),
        })
    }
}

pub fn run(ctx: &Ctx, cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::Add(args) => task_add::add(ctx, *args),
        TaskCommand::Set(args) => task_set::set(ctx, *args),
        TaskCommand::List(args) => list(ctx, args.json),
        TaskCommand::Show { name, json } => show(ctx, &name, json.json),
        TaskCommand::Enable { name } => set_enabled(ctx, &name, true),
        TaskCommand::Disable { name } => set_enabled(ctx, &name, false),
        TaskCommand::Delete(args) => delete(ctx, args),
        TaskCommand::Prune(args) => task_prune::prune(ctx, args),
        TaskCommand::Run { name, progress } => task_run::run(ctx, &name, progress),
    }
}

fn list(ctx: &Ctx, json: bool) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let tasks = store.tasks()?;
    let views = tasks
        .iter()
        .map(|t| TaskView::new(&store, t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if json {
        return print_json(&views);
    }
    let mut table = Table::new(&[
        "NAME", "ENABLED", "SCHEDULE", "TARGET", "POOL", "LAST", "LAST RUN", "SHARE",
    ]);
    for v in &views {
        table.row(vec![
            v.name.to_string(),
            yes_no(v.enabled),
            v.schedule.clone(),
            v.target.to_string(),
            v.pool.to_string(),
            or_dash(v.last_status),
            or_dash(v.last_run.map(time)),
            v.share.display().to_string(),
        ]);
    }
    table.print()?;
    Ok(())
}

fn show(ctx: &Ctx, name: &str, json: bool) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let defaults = &ctx.config.sender.hooks;
    let task = existing(&store, name)?;
    let v = TaskView::new(&store, &task)?;
    if json {
        return print_json(&v);
    }
    let port = |p: Option<u16>| p.map_or_else(|| "the appliance's".to_string(), |p| p.to_string());
    print_fields(&[
        ("name", v.name.to_string()),
        ("share", v.share.display().to_string()),
        ("target", format!("{} (pool {})", v.target, v.pool)),
        ("schedule", format!("{} ({})", v.schedule, v.frequency)),
        ("enabled", yes_no(v.enabled)),
        ("meta port", port(v.meta_port)),
        ("data port", port(v.data_port)),
        ("keep here", retention(v.keep_source, v.preserve_source)),
        (
            "keep on target",
            retention(v.keep_target, v.preserve_target),
        ),
        ("skip unchanged", on_off(v.skip_unchanged)),
        (
            "pre-snapshot",
            hook(v.pre_snapshot, defaults.pre_snapshot.as_deref()),
        ),
        (
            "post-snapshot",
            hook(v.post_snapshot, defaults.post_snapshot.as_deref()),
        ),
        (
            "on-success",
            hook(v.on_success, defaults.on_success.as_deref()),
        ),
        (
            "on-failure",
            hook(v.on_failure, defaults.on_failure.as_deref()),
        ),
        ("snapshot dir", v.snapshot_dir.display().to_string()),
        ("compression", compression(v.compress, v.compress_auto)),
        (
            "bandwidth limit",
            crate::bandwidth::Rate(v.bwlimit).to_string(),
        ),
        ("send compressed", v.send_compressed.as_str().to_string()),
        ("replica name", v.replica_name.clone()),
        ("created", time(v.created_at)),
        ("last run", or_dash(v.last_run.map(time))),
        ("last status", or_dash(v.last_status)),
        ("last error", or_dash(v.last_error.clone())),
    ])?;
    Ok(())
}

fn set_enabled(ctx: &Ctx, name: &str, enabled: bool) -> anyhow::Result<()> {
    let store = ctx.store()?;
    existing(&store, name)?;
    let word = if enabled { "enabled" } else { "disabled" };
    if store.set_task_enabled(name, enabled)? {
        outln!("task {name} {word}");
    } else {
        outln!("task {name} was already {word}; nothing changed");
    }
    Ok(())
}

fn delete(ctx: &Ctx, args: DeleteArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let task = existing(&store, &args.name)?;
    if !args.yes {
        // Only what the task has is mentioned: "its snapshots are kept" of a
        // task that never made one reads as if some were there.
        match own_snapshots(&store, &task).ok().map(|s| s.len()) {
            Some(0) => bad_input!(
                "refusing to delete task {} without --yes; it has no snapshots here, and its \
                 history is kept",
                args.name
            ),
            _ => bad_input!(
                "refusing to delete task {} without --yes; its snapshots are kept unless you add \
                 --purge-snapshots",
                args.name
            ),
        }
    }
    // A run streaming one of the snapshots must not see it purged.
    let Some(_lock) = TaskLock::try_acquire(&ctx.state_dir, &task.name)? else {
        anyhow::bail!(
            "task {} is running right now; delete it when the run has finished",
            task.name
        );
    };
    // Snapshots go first: if a deletion fails, the task is still there to retry.
    // Without --purge-snapshots they are only counted, and a listing that
    // fails must not stop the deletion: the line then names no number.
    let snapshots = if args.purge_snapshots {
        Some(purge_snapshots(&store, &task)?)
    } else {
        own_snapshots(&store, &task).ok().map(|s| s.len())
    };
    store.delete_task(&task.name)?;
    match snapshots {
        Some(0) => outln!(
            "deleted task {} (it had no snapshots); history is kept",
            task.name
        ),
        Some(n) if args.purge_snapshots => outln!(
            "deleted task {} and its {}; history is kept",
            task.name,
            count_snapshots(n)
        ),
        Some(n) => outln!(
            "deleted task {}; its {} {} in {}, history is kept",
            task.name,
            count_snapshots(n),
            if n == 1 { "stays" } else { "stay" },
            task.snapshot_dir.display()
        ),
        None => outln!(
            "deleted task {}; any snapshots of it stay in {}, history is kept",
            task.name,
            task.snapshot_dir.display()
        ),
    }
    Ok(())
}

/// `1 snapshot`, `3 snapshots`.
fn count_snapshots(n: usize) -> String {
    if n == 1 {
        "1 snapshot".to_string()
    } else {
        format!("{n} snapshots")
    }
}

/// This task's snapshots on this appliance: those its history records as its
/// own (see `sender::plan::owned`); none when its snapshot dir is gone.
fn own_snapshots(store: &Store, task: &Task) -> anyhow::Result<Vec<PathBuf>> {
    if !task.snapshot_dir.exists() {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let records = store.snapshot_records(task.id)?;
    let others = store.snapshots_of_others(task.id)?;
    let found = runtime.block_on(btrfs::list(&task.snapshot_dir))?;
    let ours = sender::plan::owned(found, &records, &others).ours;
    Ok(ours.into_iter().map(|s| s.path).collect())
}

/// Deletes this task's snapshots on this appliance; returns how many.
fn purge_snapshots(store: &Store, task: &Task) -> anyhow::Result<usize> {
    let ours = own_snapshots(store, task)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for path in &ours {
            btrfs::delete(path).await?;
        }
        // Leave the directory if anything else lives there.
        let _ = std::fs::remove_dir(&task.snapshot_dir);
        anyhow::Ok(ours.len())
    })
}

/// `newest 5, and the grid 24h 7d` or `newest 3`.
fn retention(newest: u32, grid: &str) -> String {
    if grid == "none" {
        format!("newest {newest}")
    } else {
        format!("newest {newest}, and the grid {grid}")
    }
}

/// A task's hook as it will run: its own, or the config's default.
fn hook(own: Option<&str>, default: Option<&str>) -> String {
    match (own, default) {
        (Some(""), _) | (None, None | Some("")) => "-".to_string(),
        (Some(cmd), _) => cmd.to_string(),
        (None, Some(cmd)) => format!("{cmd} (config default)"),
    }
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}
