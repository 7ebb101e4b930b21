//! The replica directories on disk, and nothing else: where replicas live, the
//! `latest` link, whether a replica is intact, and deleting what receives left.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::store::Replica;
use crate::{btrfs, names};

/// The directory in each pool that holds everything ferry receives.
pub const FERRY_DIR: &str = ".ferry";

/// The symlink in each replica directory naming the newest verified replica.
pub const LATEST: &str = "latest";

/// Temporary names for the next `latest`; the leading dot keeps them apart from
/// every valid snapshot name.
const LATEST_TMP: &str = ".latest.tmp-";

/// Names of failback bases (see `failback`); the leading dot keeps them
/// apart from every valid snapshot name.
pub(crate) const FAILBACK_PREFIX: &str = ".failback-";

/// Where replicas of `share` from the appliance `source_uuid` live in a pool:
/// `<pool>/.ferry/<source uuid>/<share>`.
pub fn replica_dir(pool_path: &Path, source_uuid: Uuid, share: &str) -> PathBuf {
    pool_path
        .join(FERRY_DIR)
        .join(source_uuid.hyphenated().to_string())
        .join(share)
}

/// Creates `<pool>/.ferry/<source>/<share>` (`.ferry` mode 0700) and returns it.
/// Each level must be a real directory: a symlink planted there could point the
/// receive anywhere.
pub(crate) fn create_replica_dir(pool: &Path, source: Uuid, share: &str) -> io::Result<PathBuf> {
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

/// What a recorded replica is on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaState {
    /// Read-only, with its received_uuid, and unchanged since it was
    /// received. `record`: its ctransid, to record for a replica that has
    /// none recorded yet.
    Intact { record: Option<u64> },
    /// Still there but no parent any more, and why (it changed after it was
    /// received, is writable, carries another received_uuid...). Kept: only
    /// retention deletes a recorded replica.
    Withheld(String),
    /// Nothing is there: deleted by hand.
    Gone,
}

/// The state of replica `r` in `dir`.
///
/// `Err` only when it cannot be read, which must never read as "not held":
/// the sender deletes what the target lacks.
///
/// A replica's ctransid moves a transaction or two past the receive's
/// rtransid on its own (btrfs receive's last inode updates are committed
/// after it records the receive), so the changed-check compares with the
/// ctransid recorded once the receive was committed, never with rtransid.
///
/// # Errors
///
/// btrfs's, when the replica cannot be stat'ed, committed or inspected.
pub async fn replica_state(dir: &Path, r: &Replica) -> Result<ReplicaState, btrfs::Error> {
    if names::validate_snapshot(&r.snapshot).is_err() {
        return Ok(ReplicaState::Withheld(
            "has a name ferry does not use".into(),
        ));
    }
    let path = dir.join(&r.snapshot);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ReplicaState::Gone),
        Err(source) => return Err(btrfs::Error::Path { path, source }),
        Ok(meta) if !meta.is_dir() => {
            return Ok(ReplicaState::Withheld("is not a directory".into()))
        }
        Ok(_) => {}
    }
    if !btrfs::is_subvolume(&path)? {
        return Ok(ReplicaState::Withheld("is not a subvolume".into()));
    }
    if r.ctransid.is_none() {
        // Recorded now, so it must be what is on disk (see above).
        btrfs::commit_filesystem(&path).await?;
    }
    let sub = btrfs::show(&path).await?;
    if !sub.readonly {
        return Ok(ReplicaState::Withheld("is no longer read-only".into()));
    }
    if sub.received_uuid != Some(r.received_uuid) {
        let has = sub
            .received_uuid
            .map_or_else(|| "none".to_string(), |u| u.to_string());
        return Ok(ReplicaState::Withheld(format!(
            "has received_uuid {has}, not {}",
            r.received_uuid
        )));
    }
    match (sub.ctransid, r.ctransid) {
        (Some(now), Some(then)) if now > then => Ok(ReplicaState::Withheld(format!(
            "changed after it was received (ctransid {now} > {then}, recorded at the receive)"
        ))),
        (now, None) => Ok(ReplicaState::Intact { record: now }),
        _ => Ok(ReplicaState::Intact { record: None }),
    }
}

/// `path`'s ctransid once everything written to its filesystem is
/// committed: what a later change-check compares with. `None` when it cannot
/// be read (it is then recorded at the replica's next check).
pub(crate) async fn settled_ctransid(path: &Path) -> Option<u64> {
    if let Err(e) = btrfs::commit_filesystem(path).await {
        tracing::warn!(path = %path.display(), error = %e, "cannot commit the received replica");
        return None;
    }
    match btrfs::show(path).await {
        Ok(sub) => sub.ctransid,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the replica's ctransid");
            None
        }
    }
}

/// An exclusive lock on a replica directory (a flock on the directory
/// itself) for changing its `latest` link: the receiver and `ferry status`,
/// which repairs a dangling one, may both do so.
pub(crate) fn lock_dir(dir: &Path) -> io::Result<nix::fcntl::Flock<std::fs::File>> {
    let file = std::fs::File::open(dir)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno.into())
}

/// Points `dir/latest` at `name` atomically: a new link under a temporary name,
/// renamed over the old one, so readers see the old target or the new, never none.
pub(crate) fn point_latest(dir: &Path, name: &str) -> io::Result<()> {
    let _lock = lock_dir(dir)?;
    swap_latest(dir, name)
}

fn swap_latest(dir: &Path, name: &str) -> io::Result<()> {
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
pub(crate) fn repair_latest(dir: &Path, newest: Option<&str>) -> io::Result<()> {
    let _lock = lock_dir(dir)?;
    repair_latest_locked(dir, newest)
}

/// [`repair_latest`] for a caller that holds the directory's lock.
pub(crate) fn repair_latest_locked(dir: &Path, newest: Option<&str>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(LATEST_TMP) {
            std::fs::remove_file(entry.path())?;
        }
    }
    let link = dir.join(LATEST);
    let current = std::fs::read_link(&link).ok();
    match newest {
        Some(name) if current.as_deref() != Some(Path::new(name)) => swap_latest(dir, name),
        Some(_) => Ok(()),
        None if std::fs::symlink_metadata(&link).is_ok() => std::fs::remove_file(&link),
        None => Ok(()),
    }
}

/// Deletes the partials of failed or interrupted receives in `dir`: subvolumes
/// that are writable or have no received_uuid (btrfs receive sets both only at
/// the very end), named as one of this receiver's receives of the line
/// (`attempted`, from its history), unless one of `keep` names them. Returns
/// the names deleted. Only the holder of the share's lock (or startup, before
/// any session) may call this.
///
/// Anything else is left alone and logged: a complete received subvolume no
/// row names (a pool re-added under another name, a lost state.db) is never
/// deleted on the database's word alone, nor is a subvolume no receive of
/// this receiver made (a writable snapshot a user took of a replica to
/// restore from, say). A session deletes its own complete-but-unverified
/// subvolume by name ([`delete_own`]).
///
/// # Errors
///
/// btrfs's, listing or deleting.
pub(crate) async fn delete_partials(
    dir: &Path,
    keep: &[Replica],
    attempted: &HashSet<String>,
) -> Result<Vec<String>, btrfs::Error> {
    let mut deleted = Vec::new();
    for sub in btrfs::list(dir).await? {
        let name = sub
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        // Failback bases are ferry's own by another record; retention deletes them.
        if keep.iter().any(|r| r.snapshot == name) || name.starts_with(FAILBACK_PREFIX) {
            continue;
        }
        if sub.readonly && sub.received_uuid.is_some() {
            tracing::warn!(dir = %dir.display(), snapshot = name, received_uuid = ?sub.received_uuid,
                "a complete received subvolume is not recorded as a replica; left alone \
                 (not offered in Inventory); delete it by hand if it is not wanted");
            continue;
        }
        if !attempted.contains(&name) {
            tracing::warn!(dir = %dir.display(), subvolume = name,
                "a subvolume no receive of this receiver made is in a replica directory; left alone");
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
pub(crate) async fn delete_own(dir: &Path, names: &[&str]) -> Result<(), btrfs::Error> {
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

/// `<ferry>/<source uuid>/<share>` directories; anything else there is not ours
/// and is left alone.
pub(crate) fn replica_dirs(ferry: &Path) -> Result<Vec<(Uuid, String, PathBuf)>, btrfs::Error> {
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
            if names::validate_share(&name).is_ok() && share.file_type().is_ok_and(|t| t.is_dir()) {
                out.push((uuid, name, share.path()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Pins: `latest` is swapped by rename, so a reader never finds it missing
    /// or half-made while it moves from one replica to the next.
    #[test]
    fn the_latest_swap_is_atomic_for_readers() {
        let dir = tempfile::tempdir().expect("tmp");
        point_latest(dir.path(), "s0").expect("first link");
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (done, link) = (done.clone(), dir.path().join(LATEST));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let target = std::fs::read_link(&link).expect("latest is always there");
                    let name = target.to_string_lossy();
                    assert!(name == "s0" || name == "s1", "{name}");
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..300 {
            point_latest(dir.path(), if i % 2 == 0 { "s1" } else { "s0" }).expect("swap");
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);
        // No temporary link outlives its swap.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, [LATEST]);
    }

    #[test]
    fn repair_sweeps_temporary_links_and_follows_the_newest() {
        let dir = tempfile::tempdir().expect("tmp");
        std::os::unix::fs::symlink("s0", dir.path().join(".latest.tmp-abc")).expect("plant");
        repair_latest(dir.path(), Some("s2")).expect("repair");
        assert_eq!(
            std::fs::read_link(dir.path().join(LATEST)).expect("latest"),
            Path::new("s2")
        );
        repair_latest(dir.path(), None).expect("repair");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
