//! `ferry pool add|list|remove`: local btrfs filesystems that accept replicas.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::ctx::{bad_input, BadInput, Ctx};
use super::output::{outln, print_json, time, Table};
use super::own_dirs::refuse_own;
use crate::state_lock::{Daemon, StateLock};
use crate::store::{ReceiveRow, Store};
use crate::{btrfs, names};

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Accept replicas into a mounted btrfs filesystem or subvolume.
    Add { name: String, path: PathBuf },
    /// List pools.
    List(ListArgs),
    /// Stop accepting replicas into a pool (replicas already there stay on disk).
    /// Refused while a receive into it runs, unless --force.
    Remove(RemoveArgs),
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    name: String,
    /// Abort receives running into the pool: the receiver deletes their
    /// partials and tells their senders the pool is gone.
    #[arg(long)]
    force: bool,
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
        PoolCommand::Remove(args) => remove(ctx, &args.name, args.force),
    }
}

fn add(ctx: &Ctx, name: &str, path: &Path) -> anyhow::Result<()> {
    let store = ctx.store()?;
    if let Err(e) = names::validate("pool", name) {
        bad_input!("{e}");
    }
    refuse_own("pool", &resolve("pool", path)?, &store)?;
    let path = btrfs_subvolume_path("pool", path)?;
    refuse_read_only(&path)?;
    refuse_taken(&store, name, &path)?;
    // Recorded so the receiver can tell this filesystem from whatever is at
    // the path when it is unmounted (a plain directory, another filesystem).
    let fs_uuid = btrfs::filesystem_uuid(Path::new(&path))?;
    store.add_pool(name, &path, fs_uuid)?;
    outln!("added pool {name} at {path}; replicas will go under {path}/.ferry/");
    Ok(())
}

/// One path, one pool; one name, one pool. Each refusal names the pool that
/// has the path or the name, and the way out.
fn refuse_taken(store: &Store, name: &str, path: &str) -> anyhow::Result<()> {
    let by_name = store.pool(name)?;
    let by_path = store.pool_by_path(path)?;
    match (by_name, by_path) {
        (Some(same), Some(other)) if same.id == other.id => bad_input!(
            "{path} is already pool {name}; nothing to add (`ferry pool list` shows the pools)"
        ),
        (Some(named), Some(other)) => bad_input!(
            "{path} is already pool {}, and pool {name} is at {}; a path and a name each \
             belong to one pool (`ferry pool list` shows them)",
            other.name,
            named.path.display()
        ),
        (None, Some(other)) => bad_input!(
            "{path} is already pool {0}; a path belongs to one pool: tasks send there with --pool \
             {0} (`ferry pool list` shows the pools, `ferry pool remove {0}` frees the path)",
            other.name
        ),
        (Some(named), None) => bad_input!(
            "pool {name} already exists, at {}; pick another name, or `ferry pool remove {name}` \
             first, which leaves its replicas on disk (`ferry pool list` shows the pools)",
            named.path.display()
        ),
        (None, None) => Ok(()),
    }
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

fn remove(ctx: &Ctx, name: &str, force: bool) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let Some(pool) = store.pool(name)? else {
        bad_input!("no pool named {name}; `ferry pool list` shows the known ones");
    };
    // Running rows mean receives in flight only while a receiver is alive;
    // a crash's leftovers are failed at the receiver's next start.
    let receiver = StateLock::holder(&ctx.state_dir, Daemon::Receiver)?;
    let running = match &receiver {
        Some(_) => store.running_receives(name)?,
        None => Vec::new(),
    };
    if let (Some(holder), false) = (&receiver, running.is_empty()) {
        if !force {
            bad_input!(
                "pool {name} is receiving {} right now (ferry receiver, {holder}); remove it once \
                 that has ended (`ferry history receive`), or now with --force, which aborts it",
                receives(&running)
            );
        }
    }
    store.remove_pool(name)?;
    if !running.is_empty() {
        wait_aborted(&store, name, &running)?;
        outln!("aborted the receive of {}", receives(&running));
    }
    outln!(
        "removed pool {name}; replicas under {}/.ferry stay on disk",
        pool.path.display()
    );
    Ok(())
}

/// How long `pool remove --force` waits for the receiver to end the receives
/// it aborts: it notices within a second, then deletes the partial.
const ABORT_WAIT: Duration = Duration::from_secs(60);

/// Waits until the receiver has ended every receive in `running` (it notices
/// the pool is gone and fails them).
fn wait_aborted(store: &Store, pool: &str, running: &[ReceiveRow]) -> anyhow::Result<()> {
    let deadline = Instant::now() + ABORT_WAIT;
    for row in running {
        while store.receive_running(row.id)? {
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "pool {pool} is removed, but the receiver has not ended the receive of \
                     {} within {}s; `ferry history receive` shows when it does",
                    receives(std::slice::from_ref(row)),
                    ABORT_WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// "share photos snapshot s1 from nas1, ..."
fn receives(rows: &[ReceiveRow]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "share {} snapshot {} from {}",
                r.share, r.attempt.snapshot, r.source
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A read-only subvolume (a snapshot, or a replica from another pool) cannot
/// take a `btrfs receive`: every receive into it would fail.
fn refuse_read_only(path: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if runtime.block_on(btrfs::show(Path::new(path)))?.readonly {
        bad_input!(
            "pool path {path} is a read-only subvolume (a snapshot or a replica), which btrfs \
             receive cannot write into; give a writable subvolume or the filesystem's mount point"
        );
    }
    Ok(())
}

/// `path` made absolute, with symlinks resolved; it must exist.
pub fn resolve(what: &str, path: &Path) -> anyhow::Result<PathBuf> {
    match path.canonicalize() {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bad_input!(
            "{what} path {} does not exist; give the path of an existing btrfs subvolume{}",
            path.display(),
            if path.is_relative() {
                " (a relative path starts in the current directory)"
            } else {
                ""
            }
        ),
        Err(e) => bad_input!("{what} path {}: {e}", path.display()),
    }
}

/// Resolves `path` to an absolute UTF-8 path of a btrfs subvolume (a mounted
/// btrfs filesystem's top is one too), or says what is wrong with it.
pub fn btrfs_subvolume_path(what: &str, path: &Path) -> anyhow::Result<String> {
    let canonical = resolve(what, path)?;
    let shown = canonical.display();
    let give =
        "give a subvolume (`btrfs subvolume create` makes one) or the filesystem's mount point";
    match std::fs::metadata(&canonical) {
        Ok(m) if m.is_file() => {
            bad_input!("{what} path {shown} is a file, not a btrfs subvolume; {give}")
        }
        Ok(m) if !m.is_dir() => bad_input!(
            "{what} path {shown} is not a directory (a device, socket or pipe), not a btrfs \
             subvolume; {give}"
        ),
        Ok(_) => {}
        Err(e) => bad_input!("{what} path {shown}: {e}"),
    }
    if !btrfs::is_btrfs(&canonical)? {
        bad_input!("{what} path {shown} is not on a btrfs filesystem; give a mounted btrfs filesystem or subvolume");
    }
    if !btrfs::is_subvolume(&canonical)? {
        bad_input!("{what} path {shown} is a plain directory, not a btrfs subvolume; {give}");
    }
    canonical
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| BadInput(format!("{what} path {shown} is not valid UTF-8")).into())
}
