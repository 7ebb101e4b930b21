//! `ferry task set NAME [options]`: edits a task's settings through the same
//! option set and validation as `task add`. What names the replica line (share,
//! target, pool) or holds the incremental chain (snapshot dir) is refused, with
//! the way to do it: a new task.

use std::path::PathBuf;

use clap::Args;

use super::ctx::{bad_input, existing, Ctx};
use super::output::outln;
use super::task_opts::TaskOptions;
use super::values;
use crate::bandwidth::Rate;
use crate::store::{TaskHooks, TaskSettings};

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The task to edit.
    name: String,
    #[command(flatten)]
    options: TaskOptions,
    /// Let all four hooks follow the config's defaults again.
    #[arg(long)]
    hooks_from_config: bool,
    /// Refused: a task's target cannot change (make a new task).
    #[arg(long, hide = true)]
    target: Option<String>,
    /// Refused: a task's pool cannot change (make a new task).
    #[arg(long, hide = true)]
    pool: Option<String>,
    /// Refused: a task's share cannot change (make a new task).
    #[arg(long, hide = true)]
    share: Option<PathBuf>,
    /// Refused: a task's snapshot dir cannot change (make a new task).
    #[arg(long, hide = true)]
    snapshot_dir: Option<PathBuf>,
}

pub fn set(ctx: &Ctx, args: SetArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let task = existing(&store, &args.name)?;
    let new_task = format!(
        "add a new task (`ferry task add NAME --share {} --target APPLIANCE --pool POOL ...`), \
         and delete {} once the new one has its first replica",
        task.share.display(),
        task.name
    );
    if let Some(target) = args.target.as_deref().filter(|t| *t != task.target) {
        bad_input!(
            "task {} cannot move from {} to {target}: its replicas and the incremental chain live on {}; {new_task}",
            task.name, task.target, task.target
        );
    }
    if let Some(pool) = args.pool.as_deref().filter(|p| *p != task.pool) {
        bad_input!(
            "task {} cannot move from pool {} to {pool}: its replicas and the incremental chain live in pool {}; {new_task}",
            task.name, task.pool, task.pool
        );
    }
    if let Some(share) = args.share.as_ref().filter(|s| **s != task.share) {
        bad_input!(
            "task {} cannot send {} instead of {}: the target keeps one replica line per share; \
             add a new task for {} (`ferry task add NAME --share {} --target {} --pool {} ...`)",
            task.name,
            share.display(),
            task.share.display(),
            share.display(),
            share.display(),
            task.target,
            task.pool
        );
    }
    if let Some(dir) = args
        .snapshot_dir
        .as_ref()
        .filter(|d| **d != task.snapshot_dir)
    {
        bad_input!(
            "task {} cannot move its snapshots to {}: its common base with {} lives in {}; {new_task}",
            task.name,
            dir.display(),
            task.target,
            task.snapshot_dir.display()
        );
    }
    if args.options.is_empty() && !args.hooks_from_config {
        bad_input!(
            "nothing to change: give the settings to change, e.g. `ferry task set {} --keep-target 10` (see `ferry task set --help`)",
            task.name
        );
    }
    let before = task.settings();
    let mut after = before.clone();
    if args.hooks_from_config {
        after.hooks = TaskHooks::default();
    }
    args.options.apply(&mut after)?;
    if let Some(target) = store.appliance(&task.target)? {
        values::distinct_ports(
            after.meta_port.unwrap_or(target.meta_port),
            after.data_port.unwrap_or(target.data_port),
            &format!(
                "task {}'s meta and data ports (its own, else {}'s)",
                task.name, target.name
            ),
        )?;
    }
    let changes = differences(&before, &after);
    if changes.is_empty() {
        outln!("task {}: nothing changed", task.name);
        return Ok(());
    }
    store.set_task_settings(&task.name, &after)?;
    outln!("task {}: {}", task.name, changes.join(", "));
    Ok(())
}

/// Each changed setting as `name old -> new`.
fn differences(a: &TaskSettings, b: &TaskSettings) -> Vec<String> {
    // Every field is named here, so a setting added to `TaskSettings` does not
    // compile until it is compared: one left out made `task set` print
    // "nothing changed" and store nothing (--bwlimit, --send-compressed did).
    let TaskSettings {
        frequency,
        timezone,
        meta_port,
        data_port,
        keep_source,
        keep_target,
        preserve_source,
        preserve_target,
        compress,
        compress_auto,
        bwlimit,
        skip_unchanged,
        hooks:
            TaskHooks {
                pre_snapshot,
                post_snapshot,
                on_success,
                on_failure,
            },
        send_compressed,
    } = a;
    let port = |p: Option<u16>| p.map_or_else(|| "default".to_string(), |p| p.to_string());
    let hook = |h: &Option<String>| match h.as_deref() {
        None => "(config default)".to_string(),
        Some("") => "(none)".to_string(),
        Some(cmd) => format!("'{cmd}'"),
    };
    let zone = |z: &Option<String>| z.clone().unwrap_or_else(|| "system".to_string());
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    let compression = |level: i32, auto: bool| super::output::compression(level, auto);
    // Rates are shown rounded (5.0MiB/s); two that round alike show bytes.
    let rate = |r: u64, other: u64| {
        let (shown, other_shown) = (Rate(r).to_string(), Rate(other).to_string());
        if r != other && shown == other_shown {
            format!("{r} B/s")
        } else {
            shown
        }
    };
    let fields = [
        ("frequency", frequency.clone(), b.frequency.clone()),
        ("time zone", zone(timezone), zone(&b.timezone)),
        ("meta port", port(*meta_port), port(b.meta_port)),
        ("data port", port(*data_port), port(b.data_port)),
        (
            "keep source",
            keep_source.to_string(),
            b.keep_source.to_string(),
        ),
        (
            "keep target",
            keep_target.to_string(),
            b.keep_target.to_string(),
        ),
        (
            "preserve source",
            preserve_source.clone(),
            b.preserve_source.clone(),
        ),
        (
            "preserve target",
            preserve_target.clone(),
            b.preserve_target.clone(),
        ),
        (
            "compression",
            compression(*compress, *compress_auto),
            compression(b.compress, b.compress_auto),
        ),
        (
            "bandwidth limit",
            rate(*bwlimit, b.bwlimit),
            rate(b.bwlimit, *bwlimit),
        ),
        (
            "send compressed",
            send_compressed.as_str().to_string(),
            b.send_compressed.as_str().to_string(),
        ),
        (
            "skip unchanged",
            on_off(*skip_unchanged),
            on_off(b.skip_unchanged),
        ),
        (
            "pre-snapshot",
            hook(pre_snapshot),
            hook(&b.hooks.pre_snapshot),
        ),
        (
            "post-snapshot",
            hook(post_snapshot),
            hook(&b.hooks.post_snapshot),
        ),
        ("on-success", hook(on_success), hook(&b.hooks.on_success)),
        ("on-failure", hook(on_failure), hook(&b.hooks.on_failure)),
    ];
    fields
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(name, old, new)| format!("{name} {old} -> {new}"))
        .collect()
}
