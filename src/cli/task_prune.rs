//! `ferry task prune NAME [--dry-run] [--json]`: each of the task's snapshots
//! here and each replica on its target, kept or deleted and by which rule;
//! without `--dry-run`, pruned now.

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use super::ctx::{existing, Ctx};
use super::output::{outln, print_json, time, Table};
use crate::retention::{Rule, Verdict};
use crate::sender::{self, Entry, PruneReport};
use crate::store::Task;

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The task.
    name: String,
    /// Show what would be kept and deleted, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

/// One snapshot or replica as `--json` prints it.
#[derive(Serialize)]
struct EntryView {
    name: String,
    created: DateTime<Utc>,
    /// `keep` or `delete`.
    action: &'static str,
    /// Every rule that keeps it (empty when deleted).
    rules: Vec<String>,
    /// Why it goes (`null` when kept).
    reason: Option<String>,
}

#[derive(Serialize)]
struct TargetView {
    appliance: String,
    pool: String,
    /// Whether the target applies the grid (`retention-grid`).
    grid_applied: bool,
    /// The target's `max_replicas_per_line`, when it said.
    cap: Option<u32>,
    /// What the target does instead, when it does not apply the grid.
    note: Option<String>,
    replicas: Vec<EntryView>,
}

#[derive(Serialize)]
struct PruneView {
    task: String,
    dry_run: bool,
    source: Vec<EntryView>,
    target: TargetView,
    deleted_source: Vec<String>,
    /// `null` in a dry run, or when the target prunes at its next receive.
    deleted_target: Option<Vec<String>>,
}

pub fn prune(ctx: &Ctx, args: PruneArgs) -> anyhow::Result<()> {
    let task = existing(&ctx.store()?, &args.name)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime
        .block_on(sender::prune_task(&ctx.state_dir, &task.name, args.dry_run))
        .with_context(|| format!("cannot prune task {}", task.name))?;
    let view = view(&task, &report, args.dry_run);
    if args.json {
        return print_json(&view);
    }
    print_text(&task, &view)
}

fn entry(e: &Entry) -> EntryView {
    let (action, rules, reason) = match &e.verdict {
        Verdict::Keep(rules) => ("keep", rules.iter().map(Rule::to_string).collect(), None),
        Verdict::Delete(why) => ("delete", Vec::new(), Some(why.to_string())),
    };
    EntryView {
        name: e.name.clone(),
        created: e.created,
        action,
        rules,
        reason,
    }
}

fn view(task: &Task, r: &PruneReport, dry_run: bool) -> PruneView {
    let note = (!r.grid_on_target).then(|| {
        format!(
            "{} runs a ferry without retention grids (feature retention-grid): it keeps the \
             newest {} replicas only, pruned at its next receive; the grid {} applies once it is upgraded",
            task.target, task.keep_target, task.preserve_target
        )
    });
    PruneView {
        task: task.name.clone(),
        dry_run,
        source: r.source.iter().map(entry).collect(),
        target: TargetView {
            appliance: task.target.clone(),
            pool: task.pool.clone(),
            grid_applied: r.grid_on_target,
            cap: r.target_cap,
            note,
            replicas: r.target.iter().map(entry).collect(),
        },
        deleted_source: r.deleted_source.clone(),
        deleted_target: r.deleted_target.clone(),
    }
}

fn table(entries: &[EntryView]) -> anyhow::Result<()> {
    if entries.is_empty() {
        outln!("  (none)");
        return Ok(());
    }
    let mut t = Table::new(&["ACTION", "CREATED", "NAME", "WHY"]);
    for e in entries {
        t.row(vec![
            e.action.to_string(),
            time(e.created),
            e.name.clone(),
            match &e.reason {
                Some(reason) => reason.clone(),
                None => e.rules.join(", "),
            },
        ]);
    }
    t.print()
}

fn policy(newest: u32, grid: &str) -> String {
    if grid == "none" {
        format!("newest {newest}")
    } else {
        format!("newest {newest}, grid {grid}")
    }
}

fn print_text(task: &Task, v: &PruneView) -> anyhow::Result<()> {
    outln!(
        "on this appliance ({}):",
        policy(task.keep_source, &task.preserve_source)
    );
    table(&v.source)?;
    outln!();
    let asked = if v.target.grid_applied {
        policy(task.keep_target, &task.preserve_target)
    } else {
        policy(task.keep_target, "none")
    };
    let cap = v
        .target
        .cap
        .map(|c| format!(", at most {c} per line"))
        .unwrap_or_default();
    outln!("on {}, pool {} ({asked}{cap}):", task.target, task.pool);
    table(&v.target.replicas)?;
    if let Some(note) = &v.target.note {
        outln!("note: {note}");
    }
    let doomed = |entries: &[EntryView]| entries.iter().filter(|e| e.action == "delete").count();
    outln!();
    if v.dry_run {
        outln!(
            "dry run: would delete {} snapshot(s) here and {} replica(s) on {}; nothing changed",
            doomed(&v.source),
            doomed(&v.target.replicas),
            task.target
        );
        return Ok(());
    }
    let target = match &v.deleted_target {
        Some(gone) => format!("{} replica(s) on {}", gone.len(), task.target),
        None => format!(
            "none on {} yet (it prunes at its next receive)",
            task.target
        ),
    };
    outln!(
        "deleted {} snapshot(s) here and {target}",
        v.deleted_source.len()
    );
    Ok(())
}
