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
    /// The name of the replica line on the target [default: the share's
    /// directory name]: two shares of the same name can go to one target.
    #[arg(long, value_name = "NAME")]
    replica_name: Option<String>,
    /// Acknowledge that the share's nested subvolumes are left out (btrfs
    /// send stops at them); without it, a share that has some is refused.
    #[arg(long, value_enum)]
    nested: Option<NestedArg>,
    #[command(flatten)]
    options: TaskOptions,
}

/// `--nested`: what to do with nested subvolumes. Only `skip` exists: btrfs
/// send cannot include them, so the choice is to acknowledge that.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NestedArg {
    Skip,
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
    let Some(dir_name) = share_path.file_name().and_then(|n| n.to_str()) else {
        bad_input!(
            "share {share}: its directory name is not UTF-8; give the replica line a name with --replica-name NAME"
        );
    };
    let replica_name = match &args.replica_name {
        Some(name) => name.as_str(),
        None => dir_name,
    };
    if let Err(e) = names::validate_share(replica_name) {
        match &args.replica_name {
            Some(_) => bad_input!("{e} (--replica-name names the replica line on the target)"),
            None => bad_input!(
                "{e} (the share's directory name names it on the target; give another with --replica-name NAME)"
            ),
        }
    }
    if let Some(other) = store
        .tasks()?
        .into_iter()
        .find(|t| t.target_id == target.id && t.share_name() == replica_name)
    {
        bad_input!(
            "task {} already sends a share named {replica_name} to {}; the target keeps one replica line per name: give this one another with --replica-name NAME",
            other.name, target.name
        );
    }
    let nested = match btrfs::nested_subvolumes(share_path) {
        Ok(nested) => nested,
        Err(e) => anyhow::bail!("cannot list the nested subvolumes of {share}: {e}"),
    };
    if !nested.is_empty() && args.nested.is_none() {
        let names: Vec<String> = nested.iter().map(|p| p.display().to_string()).collect();
        bad_input!(
            "share {share} has nested subvolumes, which btrfs send leaves out: {}; replicate each with a task of its own, and add this one with --nested skip",
            names.join(", ")
        );
    }
    let snapshot_dir = match &args.snapshot_dir {
        Some(dir) => absolute(dir)?,
        None => share_path
            .parent()
            .unwrap_or(share_path)
            .join(DEFAULT_SNAPSHOT_DIR)
            .join(dir_name),
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
        replica_name: args.replica_name.as_deref(),
        settings: &settings,
    })?;
    let schedule = Schedule::parse(&settings.frequency)
        .map_or_else(|_| settings.frequency.clone(), |s| s.to_string());
    let skipped = if nested.is_empty() {
        String::new()
    } else {
        format!(
            "; {} nested subvolume(s) left out, each run will name them",
            nested.len()
        )
    };
    outln!(
        "added task {}: {share} to {} pool {} as {replica_name}, {schedule}, {}; snapshots in {snapshot_dir}{skipped}",
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
        bad_input!(
            "snapshot dir {} is not a directory; give a --snapshot-dir that is one, or a path where ferry can make one",
            existing.display()
        );
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
