//! Subvolume operations: read-only snapshots, durable deletion, `show` from the
//! kernel (or btrfs-progs), and listing the subvolumes in a directory.

use std::ffi::OsStr;
use std::io;
use std::path::Path;

use super::error::Error;
use super::fs::{self, is_btrfs, same_filesystem};
use super::ioctl;
use super::parse::parse_show;
use super::process::{command_line, run, BTRFS};
use super::subvolume::Subvolume;

/// A read-only snapshot of `source` at `dest` (the ioctl `btrfs subvolume
/// snapshot -r` makes), then [`show`] of it.
///
/// `dest` must not exist: btrfs would otherwise quietly create the snapshot *inside* it.
///
/// # Errors
///
/// [`Error::Exists`] when `dest` exists; [`Error::NotSubvolume`] when `source` is
/// not a subvolume; [`Error::Path`] when a path cannot be read or the ioctl fails;
/// [`Error::Failed`] when the btrfs-progs fallback fails; and what [`show`] returns.
pub async fn snapshot_readonly(source: &Path, dest: &Path) -> Result<Subvolume, Error> {
    snapshot(source, dest, true).await
}

/// Refuses an existing `dest` and a `source` that is no subvolume: btrfs
/// would otherwise create the snapshot *inside* `dest`.
pub(super) fn check_new(source: &Path, dest: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(dest) {
        Ok(_) => {
            return Err(Error::Exists {
                path: dest.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::path(dest, e)),
    }
    if !fs::is_subvolume(source)? {
        return Err(Error::NotSubvolume {
            path: source.to_path_buf(),
        });
    }
    Ok(())
}

/// A snapshot of `source` at `dest`, read-only or writable, then [`show`] of
/// it: the ioctl, or btrfs-progs where the ioctl is not there. Errors as
/// [`snapshot_readonly`].
pub(super) async fn snapshot(
    source: &Path,
    dest: &Path,
    readonly: bool,
) -> Result<Subvolume, Error> {
    check_new(source, dest)?;
    // A snapshot commits a btrfs transaction: milliseconds of blocking work.
    let (from, to) = (source.to_path_buf(), dest.to_path_buf());
    let made = tokio::task::spawn_blocking(move || ioctl::snapshot(&from, &to, readonly))
        .await
        .map_err(|e| Error::path(dest, io::Error::other(e)))??;
    if !made {
        let mut args = vec!["subvolume".as_ref(), "snapshot".as_ref()];
        if readonly {
            args.push("-r".as_ref());
        }
        args.extend([source.as_os_str(), dest.as_os_str()]);
        run(args).await?;
    }
    show(dest).await
}

/// A read-only snapshot of `source` at `dest` that carries no received_uuid,
/// to be sent.
///
/// A read-only snapshot keeps its source's received_uuid, and btrfs send
/// announces a subvolume that has one under that uuid (that is how chained
/// replication finds its parents). A share that was itself received, then
/// made writable the old way (the plain ioctl, which keeps the field), would
/// give every snapshot the same announced uuid: its replicas could not be
/// told apart. So for such a share the snapshot is made writable, which the
/// kernel makes without received_uuid, and then read-only; a snapshot that
/// changed in between is refused. Other shares get [`snapshot_readonly`].
///
/// # Errors
///
/// What [`snapshot_readonly`] returns; [`Error::Path`] when the read-only
/// flag cannot be set; [`Error::ChangedBeforeReadOnly`] when something wrote
/// into the snapshot before it was read-only.
pub async fn snapshot_to_send(source: &Path, dest: &Path) -> Result<Subvolume, Error> {
    let share = show(source).await?;
    if share.received_uuid.is_none() {
        return snapshot_readonly(source, dest).await;
    }
    match std::fs::symlink_metadata(dest) {
        Ok(_) => {
            return Err(Error::Exists {
                path: dest.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::path(dest, e)),
    }
    let (from, to) = (source.to_path_buf(), dest.to_path_buf());
    let made = tokio::task::spawn_blocking(move || {
        if !ioctl::snapshot(&from, &to, false)? {
            return Ok(false);
        }
        ioctl::set_readonly(&to)
    })
    .await
    .map_err(|e| Error::path(dest, io::Error::other(e)))??;
    if !made {
        if !dest.exists() {
            run([
                "subvolume".as_ref(),
                "snapshot".as_ref(),
                source.as_os_str(),
                dest.as_os_str(),
            ])
            .await?;
        }
        run([
            "property".as_ref(),
            "set".as_ref(),
            "-ts".as_ref(),
            dest.as_os_str(),
            "ro".as_ref(),
            "true".as_ref(),
        ])
        .await?;
    }
    let snapshot = show(dest).await?;
    if snapshot.changed_since_created() == Some(true) {
        return Err(Error::ChangedBeforeReadOnly {
            path: dest.to_path_buf(),
        });
    }
    Ok(snapshot)
}

/// `btrfs subvolume delete --commit-after path`.
///
/// Waiting for the transaction commit makes the deletion durable before we record it:
/// without it a crash right after could bring back a half-received or pruned snapshot
/// that history says is gone. The cost is one commit per deletion, at most one a tick.
///
/// # Errors
///
/// [`Error::Failed`] when btrfs refuses (not a subvolume, busy, no permission);
/// [`Error::NotInstalled`] or [`Error::Spawn`] when it cannot run.
pub async fn delete(path: &Path) -> Result<(), Error> {
    run([
        "subvolume".as_ref(),
        "delete".as_ref(),
        "--commit-after".as_ref(),
        path.as_os_str(),
    ])
    .await?;
    Ok(())
}

/// Commits the filesystem holding `path` (`syncfs`): afterwards the
/// subvolume facts of [`show`] (its `ctransid`) cover every write made before.
/// Until the commit, a write may not have moved them yet.
///
/// # Errors
///
/// [`Error::Path`] when `path` cannot be opened or the sync fails.
pub async fn commit_filesystem(path: &Path) -> Result<(), Error> {
    let at = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&at).map_err(|e| Error::path(&at, e))?;
        nix::unistd::syncfs(&file).map_err(|e| Error::path(&at, e.into()))
    })
    .await
    .map_err(|e| Error::path(path, io::Error::other(e)))?
}

/// `btrfs subvolume delete path`, without waiting for the transaction to
/// commit: the subvolume leaves its directory at once, and btrfs makes that
/// durable within its commit interval (30 s by default). For deletions no
/// record depends on (the sender's retention: a crash that brings a snapshot
/// back only means the next run deletes it again); waiting for a commit on a
/// busy filesystem held runs for half a minute.
///
/// # Errors
///
/// As [`delete`].
pub async fn delete_lazily(path: &Path) -> Result<(), Error> {
    run(["subvolume".as_ref(), "delete".as_ref(), path.as_os_str()]).await?;
    Ok(())
}

/// What `btrfs subvolume show path` says: from the kernel directly where it
/// can (the `BTRFS_IOC_GET_SUBVOL_INFO` ioctl), else parsed from btrfs-progs.
///
/// # Errors
///
/// [`Error::NotSubvolume`] when `path` is not a subvolume's root; [`Error::Path`]
/// when it cannot be read; with the btrfs-progs fallback, [`Error::Failed`] or
/// [`Error::Show`] when its output cannot be read.
pub async fn show(path: &Path) -> Result<Subvolume, Error> {
    // The ioctl may wait on disk and tree locks: not on an async worker.
    let at = path.to_path_buf();
    let asked = tokio::task::spawn_blocking(move || ioctl::subvolume_info(&at))
        .await
        .map_err(|e| Error::path(path, io::Error::other(e)))??;
    match asked {
        Some(sub) => Ok(sub),
        None => show_by_progs(path).await,
    }
}

/// Parses `btrfs subvolume show path`.
async fn show_by_progs(path: &Path) -> Result<Subvolume, Error> {
    let args = [
        OsStr::new("subvolume"),
        OsStr::new("show"),
        path.as_os_str(),
    ];
    let out = run(args).await?;
    parse_show(path, &out).map_err(|source| Error::Show {
        command: command_line(BTRFS.as_ref(), args),
        source,
    })
}

/// The subvolumes that are direct children of `dir`, sorted by name.
///
/// Reads the directory rather than `btrfs subvolume list`: that lists the whole
/// filesystem relative to its top level, so mapping it back onto `dir` breaks as soon
/// as a subvolume (not the top level) is mounted, and it needs root. A subvolume root
/// is always inode 256 on btrfs; children on other filesystems mounted inside `dir` are
/// left out.
///
/// # Errors
///
/// [`Error::NotBtrfs`] when `dir` is not on btrfs; [`Error::Path`] when it cannot be
/// read; and what [`show`] returns for a child.
pub async fn list(dir: &Path) -> Result<Vec<Subvolume>, Error> {
    if !is_btrfs(dir)? {
        return Err(Error::NotBtrfs {
            path: dir.to_path_buf(),
        });
    }
    let mut children = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::path(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::path(dir, e))?;
        let path = entry.path();
        // Not following symlinks: a link to a subvolume elsewhere is not a child.
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Deleted between readdir and stat: it is not a child any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::path(&path, e)),
        };
        if meta.is_dir() && fs::is_subvolume_root(&meta) && same_filesystem(dir, &path)? {
            children.push((entry.file_name(), path));
        }
    }
    children.sort();
    let mut subvolumes = Vec::with_capacity(children.len());
    for (_, path) in children {
        subvolumes.push(show(&path).await?);
    }
    Ok(subvolumes)
}
