//! `ferry replica restore SOURCE SHARE --to PATH [--snapshot NAME] [--pool POOL]`:
//! a writable copy of a verified replica at PATH, a btrfs snapshot (instant,
//! no space until it is written to), recorded for `ferry history restore`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::ctx::{bad_input, Ctx};
use super::output::{outln, time};
use super::own_dirs::refuse_own;
use super::replica_list::{verified, Filter, Listed};
use crate::btrfs;
use crate::receiver::FERRY_DIR;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The appliance the replica came from: its name, or its uuid (`ferry
    /// replica list` shows both).
    source: String,
    /// The share's replica name.
    share: String,
    /// Where the writable copy goes: a path that does not exist yet, on the
    /// replica's filesystem, outside `.ferry/`.
    #[arg(long, value_name = "PATH")]
    to: PathBuf,
    /// This replica [default: the newest verified one].
    #[arg(long, value_name = "NAME")]
    snapshot: Option<String>,
    /// The pool holding the line, when several do.
    #[arg(long)]
    pool: Option<String>,
}

pub fn restore(ctx: &Ctx, args: &RestoreArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let filter = Filter {
        source: Some(&args.source),
        share: Some(&args.share),
        pool: args.pool.as_deref(),
    };
    let line = runtime.block_on(verified(&store, &filter))?;
    let replica = pick(&line, args)?;
    let to = destination(&args.to, replica)?;
    refuse_own("restore", &to, &store)?;
    let copy = runtime.block_on(btrfs::snapshot_writable(&replica.path, &to))?;
    store.record_restore(&replica.record, &to, copy.uuid)?;
    outln!(
        "restored {} from replica {} of {}'s share {} (pool {}, received {})",
        to.display(),
        replica.snapshot,
        replica.source,
        replica.share,
        replica.pool,
        time(replica.received_at)
    );
    outln!(
        "it is writable and shares its blocks with the replica until changed; a task whose \
         --share is {} sends it to {} incrementally",
        to.display(),
        replica.source
    );
    Ok(())
}

/// The replica asked for: the named one, or the newest of the one line.
fn pick<'a>(line: &'a [Listed], args: &RestoreArgs) -> anyhow::Result<&'a Listed> {
    let (source, share) = (&args.source, &args.share);
    let Some(newest) = line.first() else {
        bad_input!(
            "no verified replica of share {share} from {source}{} is held here; `ferry replica \
             list` shows the lines this appliance holds",
            args.pool
                .as_ref()
                .map(|p| format!(" in pool {p}"))
                .unwrap_or_default()
        );
    };
    if let Some(other) = line.iter().find(|l| l.pool != newest.pool) {
        bad_input!(
            "share {share} from {source} is held in pools {} and {}; name one with --pool",
            newest.pool,
            other.pool
        );
    }
    match &args.snapshot {
        None => Ok(newest),
        Some(name) => match line.iter().find(|l| &l.snapshot == name) {
            Some(found) => Ok(found),
            None => bad_input!(
                "no verified replica {name} of share {share} from {source}; `ferry replica list \
                 --source {source} --share {share}` shows them"
            ),
        },
    }
}

/// `to` made absolute (its directory resolved, so a symlink cannot lead
/// elsewhere), after the checks that it does not exist and that it is on
/// the replica's filesystem.
fn destination(to: &Path, replica: &Listed) -> anyhow::Result<PathBuf> {
    let inside_ferry = |p: &Path| p.components().any(|c| c.as_os_str() == FERRY_DIR);
    if inside_ferry(to) {
        bad_input!(
            "{} is inside a pool's {FERRY_DIR} directory, where ferry keeps the replicas it \
             receives (retention deletes what is there); give a path outside it, such as {}",
            to.display(),
            replica.pool_path.join(&replica.share).display()
        );
    }
    if std::fs::symlink_metadata(to).is_ok() {
        bad_input!(
            "{} exists; restore never overwrites: give a path that does not exist yet",
            to.display()
        );
    }
    let absolute = std::path::absolute(to)?;
    let (Some(dir), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        bad_input!(
            "{} names no directory entry; give a path such as /mnt/backup/photos",
            to.display()
        );
    };
    let Ok(dir) = dir.canonicalize() else {
        bad_input!(
            "directory {} does not exist; create it first, or restore elsewhere",
            dir.display()
        );
    };
    if !btrfs::same_filesystem(&dir, &replica.path).unwrap_or(false) {
        bad_input!(
            "{} is on another filesystem than the replica (pool {} at {}); a restore is a btrfs \
             snapshot and stays on its filesystem: give a path on that filesystem, then copy \
             from there if it must move (`cp -a --reflink=auto`)",
            to.display(),
            replica.pool,
            replica.pool_path.display()
        );
    }
    let to = dir.join(name);
    if inside_ferry(&to) {
        bad_input!(
            "{} leads inside a pool's {FERRY_DIR} directory (through a symlink), where ferry \
             keeps the replicas it receives; give a path outside it",
            to.display()
        );
    }
    Ok(to)
}
