//! The replica directories on disk: creating them safely, the `latest` link,
//! deleting partials, retention, and the sweep at startup.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use tokio::time::timeout;

use super::session::Begin;
use super::shared::Shared;
use super::{replica_dir, Error};
use crate::store::Replica;
use crate::{btrfs, names};

/// The directory in each pool that holds everything ferry receives.
pub const FERRY_DIR: &str = ".ferry";

/// The symlink in each replica directory naming the newest verified replica.
pub const LATEST: &str = "latest";

/// Temporary names for the next `latest`; the leading dot keeps them apart from
/// every valid snapshot name.
const LATEST_TMP: &str = ".latest.tmp-";

/// Creates `<pool>/.ferry/<source>/<share>` (`.ferry` mode 0700) and returns it.
/// Each level must be a real directory: a symlink planted there could point the
/// receive anywhere.
pub(super) fn create_replica_dir(pool: &Path, source: Uuid, share: &str) -> io::Result<PathBuf> {
    let dir = replica_dir(pool, source, share);
    let ferry = pool.join(FERRY_DIR);
    let mut level = ferry.clone();
    for (i, part) in [
        None,
        Some(source.hyphenated().to_string()),
        Some(share.to_owned()),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(part) = part {
            level.push(part);
        }
        let mode = if i == 0 { 0o700 } else { 0o755 };
        match std::fs::DirBuilder::new().mode(mode).create(&level) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let meta = std::fs::symlink_metadata(&level)?;
        if !meta.is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a directory (a symlink or file is in the way)",
                level.display()
            )));
        }
    }
    Ok(dir)
}

/// Whether `dir/name` is a read-only subvolume received from `received_uuid`.
///
/// `Ok(false)` only when the answer is known to be no (nothing there, not a
/// subvolume, writable, another uuid); `Err` when it cannot be read, which
/// must never read as "not held": the sender deletes what the target lacks.
pub(super) async fn is_intact(
    dir: &Path,
    name: &str,
    received_uuid: Uuid,
) -> Result<bool, btrfs::Error> {
    if names::validate_snapshot(name).is_err() {
        return Ok(false);
    }
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(btrfs::Error::Path { path, source }),
        Ok(meta) if !meta.is_dir() => return Ok(false),
        Ok(_) => {}
    }
    if !btrfs::is_subvolume(&path)? {
        return Ok(false);
    }
    let sub = btrfs::show(&path).await?;
    Ok(sub.readonly && sub.received_uuid == Some(received_uuid))
}

/// Points `dir/latest` at `name` atomically: a new link under a temporary name,
/// renamed over the old one, so readers see the old target or the new, never none.
pub(super) fn point_latest(dir: &Path, name: &str) -> io::Result<()> {
    let tmp = dir.join(format!("{LATEST_TMP}{}", Uuid::new_v4().simple()));
    std::os::unix::fs::symlink(name, &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, dir.join(LATEST)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable only once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// Points `latest` at the newest replica or removes it when there is none, and
/// removes temporary links a crash left behind.
fn repair_latest(dir: &Path, newest: Option<&str>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(LATEST_TMP) {
            std::fs::remove_file(entry.path())?;
        }
    }
    let link = dir.join(LATEST);
    let current = std::fs::read_link(&link).ok();
    match newest {
        Some(name) if current.as_deref() != Some(Path::new(name)) => point_latest(dir, name),
        Some(_) => Ok(()),
        None if std::fs::symlink_metadata(&link).is_ok() => std::fs::remove_file(&link),
        None => Ok(()),
    }
}

/// Deletes the partials of failed or interrupted receives in `dir`: subvolumes
/// that are writable or have no received_uuid (btrfs receive sets both only at
/// the very end), unless one of `keep` names them. Returns the names deleted.
/// Only the holder of the share's lock (or startup, before any session) may call this.
///
/// A read-only subvolume with a received_uuid is a complete receive, even when
/// no row names it (a pool re-added under another name, a lost state.db): it
/// is left alone and logged, never deleted on the database's word alone. A
/// session deletes its own complete-but-unverified subvolume by name
/// ([`delete_own`]).
pub(super) async fn delete_partials(
    dir: &Path,
    keep: &[Replica],
) -> Result<Vec<String>, btrfs::Error> {
    let mut deleted = Vec::new();
    for sub in btrfs::list(dir).await? {
        let name = sub
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        if keep.iter().any(|r| r.snapshot == name) {
            continue;
        }
        if sub.readonly && sub.received_uuid.is_some() {
            tracing::warn!(dir = %dir.display(), snapshot = name, received_uuid = ?sub.received_uuid,
                "a complete received subvolume is not recorded as a replica; left alone \
                 (not offered in Inventory); delete it by hand if it is not wanted");
            continue;
        }
        btrfs::delete(&sub.path).await?;
        deleted.push(name);
    }
    Ok(deleted)
}

/// Deletes the subvolumes a failed session itself created in `dir`, whatever
/// their state: a receive that completed but failed verification is read-only
/// with a received_uuid, so [`delete_partials`] would keep it. Names that are
/// not valid snapshot names or are not there are skipped.
pub(super) async fn delete_own(dir: &Path, names: &[&str]) -> Result<(), btrfs::Error> {
    for name in names {
        if names::validate_snapshot(name).is_err() || *name == LATEST {
            continue;
        }
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Ok(m) if !m.is_dir() => continue,
            _ => {}
        }
        if btrfs::is_subvolume(&path)? {
            btrfs::delete(&path).await?;
        }
    }
    Ok(())
}

/// Creates the replica directory and clears partials left in it, so btrfs
/// receive never meets a half-received subvolume of the same name. A complete
/// subvolume of that name that no row records is refused, not deleted: `fail`
/// deletes `dir/<snapshot>` as this session's own, so it must not be someone else's.
pub(super) async fn prepare(
    shared: &Shared,
    pool: &str,
    pool_path: &Path,
    source: Uuid,
    b: &Begin,
) -> Result<PathBuf, String> {
    let share = &b.share;
    let dir = create_replica_dir(pool_path, source, share)
        .map_err(|e| format!("cannot create the replica directory in pool {pool}: {e}"))?;
    let held = shared
        .db(|s| s.replicas(pool, source, share))
        .map_err(|e| format!("receiver state database: {e}"))?;
    let after = shared.config.btrfs_timeout;
    let cleared = timeout(after, delete_partials(&dir, &held))
        .await
        .map_err(|_| format!("timed out after {after:?}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
    cleared.map_err(|e| format!("cannot clear a partial receive in {}: {e}", dir.display()))?;
    let target = dir.join(&b.snapshot);
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(format!(
            "{} already exists but is not a replica this receiver recorded (a pool re-added \
             under another name, or a lost state database?); it is left alone: delete it by \
             hand, or send a snapshot with another name",
            target.display()
        ));
    }
    Ok(dir)
}

/// Keeps the newest `keep` (at least one) replicas of one share in `dir` and
/// deletes the rest, subvolume first, then row. Never touches the newest, nor
/// `just`, the replica this receive committed.
pub(super) async fn prune(shared: &Shared, dir: &Path, held: &[Replica], keep: u32, just: i64) {
    let keep = usize::try_from(keep.max(1)).unwrap_or(usize::MAX);
    // `held` is newest (highest id) first.
    for old in held.iter().skip(keep).filter(|r| r.id != just) {
        let path = dir.join(&old.snapshot);
        if names::validate_snapshot(&old.snapshot).is_err() {
            continue;
        }
        let gone = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            _ => btrfs::delete(&path).await,
        };
        match gone.map_err(|e| e.to_string()).and_then(|()| {
            shared
                .db(|s| s.remove_replica(old.id))
                .map_err(|e| e.to_string())
        }) {
            Ok(_) => tracing::info!(pool = %old.pool, appliance = %old.source, share = %old.share,
                snapshot = %old.snapshot, path = %path.display(), "retention: deleted replica"),
            Err(e) => {
                tracing::warn!(pool = %old.pool, share = %old.share, snapshot = %old.snapshot,
                error = %e, "retention: cannot delete replica; will retry after the next receive")
            }
        }
    }
}

/// Startup: fails rows a crash left running, deletes partial subvolumes in every
/// registered pool's replica directories, forgets replicas whose subvolume is
/// gone, and repairs `latest`. A verified replica is never deleted.
pub(super) async fn recover(shared: &Shared) -> Result<(), Error> {
    let failed = shared.db(|s| {
        s.fail_running_receives("interrupted: the receiver stopped before this receive finished")
    })?;
    if failed > 0 {
        tracing::warn!(
            rows = failed,
            "marked receives left running by the last run as failed"
        );
    }
    for pool in shared.db(|s| s.pools())? {
        let ferry = pool.path.join(FERRY_DIR);
        if !ferry.is_dir() {
            continue;
        }
        if let Err(reason) = super::pool::check(shared, &pool) {
            tracing::warn!(pool = %pool.name, path = %pool.path.display(),
                "skipping the pool's recovery: {reason}");
            continue;
        }
        let replicas = shared.db(|s| s.pool_replicas(&pool.name))?;
        for (source, share, dir) in replica_dirs(&ferry)? {
            let held: Vec<Replica> = replicas
                .iter()
                .filter(|r| r.source_uuid == source && r.share == share)
                .cloned()
                .collect();
            // One broken directory must not keep the receiver from serving the rest.
            if let Err(e) = recover_dir(shared, &pool.name, &dir, held).await {
                tracing::error!(pool = %pool.name, dir = %dir.display(), error = %e,
                    "startup recovery of a replica directory failed; partials may remain");
            }
        }
    }
    Ok(())
}

async fn recover_dir(
    shared: &Shared,
    pool: &str,
    dir: &Path,
    held: Vec<Replica>,
) -> Result<(), Error> {
    for name in delete_partials(dir, &held).await? {
        tracing::warn!(pool, dir = %dir.display(), snapshot = name, "deleted a partial receive");
    }
    let mut present = Vec::new();
    for r in held {
        if std::fs::symlink_metadata(dir.join(&r.snapshot)).is_ok() {
            match is_intact(dir, &r.snapshot, r.received_uuid).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(pool, snapshot = %r.snapshot,
                    "replica is no longer read-only with its received uuid; left on disk, not offered as a parent"),
                Err(e) => tracing::warn!(pool, snapshot = %r.snapshot, error = %e,
                    "cannot inspect a replica; left on disk"),
            }
            present.push(r);
        } else {
            shared.db(|s| s.remove_replica(r.id))?;
            tracing::warn!(pool, snapshot = %r.snapshot, "replica's subvolume is gone; forgot it");
        }
    }
    // The last committed, by id: received_at is a wall clock and can jump.
    let newest = present.iter().max_by_key(|r| r.id);
    if let Err(e) = repair_latest(dir, newest.map(|r| r.snapshot.as_str())) {
        tracing::warn!(pool, dir = %dir.display(), error = %e, "cannot repair the latest link");
    }
    Ok(())
}

/// `<ferry>/<source uuid>/<share>` directories; anything else there is not ours
/// and is left alone.
fn replica_dirs(ferry: &Path) -> Result<Vec<(Uuid, String, PathBuf)>, btrfs::Error> {
    let read = |dir: &Path| {
        std::fs::read_dir(dir).map_err(|source| btrfs::Error::Path {
            path: dir.to_path_buf(),
            source,
        })
    };
    let mut out = Vec::new();
    for source in read(ferry)?.flatten() {
        let Some(uuid) = source
            .file_name()
            .to_str()
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            continue;
        };
        if !source.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for share in read(&source.path())?.flatten() {
            let Some(name) = share.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if names::validate("share", &name).is_ok()
                && share.file_type().is_ok_and(|t| t.is_dir())
            {
                out.push((uuid, name, share.path()));
            }
        }
    }
    Ok(out)
}
