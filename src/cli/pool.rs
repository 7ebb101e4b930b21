//! `ferry pool add|list|remove`: local btrfs filesystems that accept replicas.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::ctx::{bad_input, BadInput, Ctx};
use super::output::{outln, print_json, time, Table};
use crate::{btrfs, names};

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Accept replicas into a mounted btrfs filesystem or subvolume.
    Add { name: String, path: PathBuf },
    /// List pools.
    List(ListArgs),
    /// Stop accepting replicas into a pool (replicas already there stay on disk).
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PoolView<'a> {
    name: &'a str,
    path: &'a Path,
    created_at: chrono::DateTime<chrono::Utc>,
}

pub fn run(ctx: &Ctx, cmd: PoolCommand) -> anyhow::Result<()> {
    match cmd {
        PoolCommand::Add { name, path } => add(ctx, &name, &path),
        PoolCommand::List(args) => list(ctx, args),
        PoolCommand::Remove { name } => remove(ctx, &name),
    }
}

fn add(ctx: &Ctx, name: &str, path: &Path) -> anyhow::Result<()> {
    let store = ctx.store()?;
    if let Err(e) = names::validate("pool", name) {
        bad_input!("{e}");
    }
    let path = btrfs_subvolume_path("pool", path)?;
    if store.pool(name)?.is_some() {
        bad_input!("pool {name} already exists; remove it first or pick another name");
    }
    if let Some(other) = store.pool_by_path(&path)? {
        bad_input!("{path} is already pool {}", other.name);
    }
    // Recorded so the receiver can tell this filesystem from whatever is at
    // the path when it is unmounted (a plain directory, another filesystem).
    let fs_uuid = btrfs::filesystem_uuid(Path::new(&path))?;
    store.add_pool(name, &path, fs_uuid)?;
    outln!("added pool {name} at {path}; replicas will go under {path}/.ferry/");
    Ok(())
}

fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let pools = ctx.store()?.pools()?;
    if args.json {
        let views: Vec<PoolView> = pools
            .iter()
            .map(|p| PoolView {
                name: &p.name,
                path: &p.path,
                created_at: p.created_at,
            })
            .collect();
        return print_json(&views);
    }
    let mut table = Table::new(&["NAME", "ADDED", "PATH"]);
    for p in &pools {
        table.row(vec![
            p.name.clone(),
            time(p.created_at),
            p.path.display().to_string(),
        ]);
    }
    table.print()?;
    Ok(())
}

fn remove(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let Some(pool) = store.pool(name)? else {
        bad_input!("no pool named {name}; `ferry pool list` shows the known ones");
    };
    store.remove_pool(name)?;
    outln!(
        "removed pool {name}; replicas under {}/.ferry stay on disk",
        pool.path.display()
    );
    Ok(())
}

/// Resolves `path` to an absolute UTF-8 path of a btrfs subvolume (a mounted
/// btrfs filesystem's top is one too), or says what is wrong with it.
pub fn btrfs_subvolume_path(what: &str, path: &Path) -> anyhow::Result<String> {
    let canonical = match path.canonicalize() {
        Ok(p) => p,
        Err(e) => bad_input!("{what} path {}: {e}", path.display()),
    };
    let shown = canonical.display();
    if !btrfs::is_btrfs(&canonical)? {
        bad_input!("{what} path {shown} is not on a btrfs filesystem; give a mounted btrfs filesystem or subvolume");
    }
    if !btrfs::is_subvolume(&canonical)? {
        bad_input!(
            "{what} path {shown} is a plain directory, not a btrfs subvolume; \
             give a subvolume (`btrfs subvolume create` makes one) or the filesystem's mount point"
        );
    }
    canonical
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| BadInput(format!("{what} path {shown} is not valid UTF-8")).into())
}
