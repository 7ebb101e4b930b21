//! `ferry task add`: every check runs before anything is written, so a refused
//! task leaves no trace.

use std::path::{Path, PathBuf};

use clap::Args;

use super::ctx::{bad_input, Ctx};
use super::output::{compression, outln};
use super::own_dirs::{self, refuse_own};
use super::pool::{btrfs_subvolume_path, resolve};
use super::task_opts::TaskOptions;
use super::values;
use crate::schedule::Schedule;
use crate::store::NewTask;
use crate::{btrfs, names};

/// Where snapshots go by default: a directory beside the share, on its filesystem.
pub const DEFAULT_SNAPSHOT_DIR: &str = own_dirs::SNAPSHOT_DIR;

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The task's name.
    name: String,
    /// The share to replicate: a btrfs subvolume.
    #[arg(long)]
    share: PathBuf,
    /// The appliance to send to (see `ferry appliance list`).
    #[arg(long)]
    target: String,
    /// The pool on the target that receives the replicas.
    #[arg(long)]
    pool: String,
    /// Where snapshots go: on the share's filesystem, outside the share
    /// [default: .ferry-snapshots/<share> beside the share].
    #[arg(long)]
    snapshot_dir: Option<PathBuf>,
    #[command(flatten)]
    options: TaskOptions,
}

pub fn add(ctx: &Ctx, args: AddArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    if let Err(e) = names::validate("task", &args.name) {
        bad_input!("{e}");
    }
    if store.task(&args.name)?.is_some() {
        bad_input!(
            "task {} already exists; pick another name or delete it first",
            args.name
        );
    }
    let Some(target) = store.appliance(&args.target)? else {
        bad_input!(
            "no appliance named {}; add it first with `ferry appliance add {} --address HOST --fingerprint FP`",
            args.target, args.target
        );
    };
    if let Err(e) = names::validate("pool", &args.pool) {
        bad_input!("{e}");
    }
    let settings = args.options.for_new_task()?;
    values::distinct_ports(
        settings.meta_port.unwrap_or(target.meta_port),
        settings.data_port.unwrap_or(target.data_port),
        &match (settings.meta_port, settings.data_port) {
            (Some(_), Some(_)) => "--meta-port and --data-port".to_string(),
            (Some(_), None) => format!("--meta-port and {}'s data port", target.name),
            (None, Some(_)) => format!("{}'s meta port and --data-port", target.name),
            (None, None) => format!("{}'s meta and data ports", target.name),
        },
    )?;
    refuse_own("share", &resolve("share", &args.share)?, &store)?;
    let share = btrfs_subvolume_path("share", &args.share)?;
    let share_path = Path::new(&share);
    let share_name = share_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(e) = names::validate("share", &share_name) {
        bad_input!("{e} (the share's directory name names it on the target)");
    }
    if let Some(other) = store
        .tasks()?
        .into_iter()
        .find(|t| t.target_id == target.id && t.share_name() == share_name)
    {
        bad_input!(
            "task {} already sends a share named {share_name} to {}; the target keeps one replica line per share name",
            other.name, target.name
        );
    }
    let snapshot_dir = match &args.snapshot_dir {
        Some(dir) => absolute(dir)?,
        None => share_path
            .parent()
            .unwrap_or(share_path)
            .join(DEFAULT_SNAPSHOT_DIR)
            .join(&share_name),
    };
    check_snapshot_dir(share_path, &snapshot_dir)?;
    refuse_own("snapshot dir", &snapshot_dir, &store)?;
    let Some(snapshot_dir) = snapshot_dir.to_str() else {
        bad_input!("snapshot dir {} is not valid UTF-8", snapshot_dir.display());
    };

    store.add_task(&NewTask {
        name: &args.name,
        share: &share,
        target_id: target.id,
        pool: &args.pool,
        snapshot_dir,
        settings: &settings,
    })?;
    let schedule = Schedule::parse(&settings.frequency)
        .map_or_else(|_| settings.frequency.clone(), |s| s.to_string());
    outln!(
        "added task {}: {share} to {} pool {}, {schedule}, {}; snapshots in {snapshot_dir}",
        args.name,
        target.name,
        args.pool,
        compression(settings.compress, settings.compress_auto)
    );
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    })
}

/// The snapshot dir may not exist yet (the first run creates it), so its nearest
/// existing ancestor must be on the share's filesystem, and outside the share:
/// snapshots inside the share would be part of the next snapshot.
fn check_snapshot_dir(share: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => break,
        }
    }
    let rest = dir.strip_prefix(existing).unwrap_or(Path::new(""));
    let resolved = existing.canonicalize()?.join(rest);
    if resolved.starts_with(share) {
        bad_input!(
            "snapshot dir {} is inside the share {}; give a --snapshot-dir outside it on the same filesystem",
            resolved.display(),
            share.display()
        );
    }
    if existing.exists() && !existing.is_dir() {
        bad_input!("snapshot dir {} is not a directory", existing.display());
    }
    if !btrfs::same_filesystem(share, existing)? {
        bad_input!(
            "snapshot dir {} is not on the share's filesystem (btrfs snapshots stay on their filesystem); \
             give a --snapshot-dir on the same filesystem as {}",
            resolved.display(),
            share.display()
        );
    }
    Ok(())
}
