//! Snapshots made to bring data back: a writable copy of a replica (a
//! restore), and a read-only copy marked as received from another subvolume
//! (a failback's parent, which btrfs receive finds by its received_uuid).

use std::io;
use std::path::Path;

use uuid::Uuid;

use super::error::Error;
use super::fs;
use super::ioctl;
use super::snapshots::{check_new, show, snapshot};
use super::subvolume::Subvolume;

/// A writable snapshot of `source` at `dest`, then [`show`] of it. The kernel
/// makes a writable snapshot without its source's received_uuid.
///
/// # Errors
///
/// [`Error::Exists`] when `dest` exists; [`Error::NotSubvolume`] when
/// `source` is not a subvolume; [`Error::Path`] when the ioctl fails (EXDEV
/// across filesystems); [`Error::Failed`] from the btrfs-progs fallback.
pub async fn snapshot_writable(source: &Path, dest: &Path) -> Result<Subvolume, Error> {
    snapshot(source, dest, false).await
}

/// A read-only snapshot of `source` at `dest` whose received_uuid is
/// `source`'s own uuid, with `source`'s ctransid as its stransid: to btrfs
/// receive it is the subvolume `source` was, received. Made writable, marked
/// (`BTRFS_IOC_SET_RECEIVED_SUBVOL` refuses a read-only subvolume), then made
/// read-only, as btrfs receive does; a copy left half-made by a failure is
/// deleted.
///
/// # Errors
///
/// As [`snapshot_writable`]; [`Error::Path`] when the kernel refuses to mark
/// it (no ioctl: Linux before 3.12) or to make it read-only;
/// [`Error::ChangedBeforeReadOnly`] when something wrote into it meanwhile.
pub async fn snapshot_as_received(source: &Path, dest: &Path) -> Result<Subvolume, Error> {
    let origin = show(source).await?;
    check_new(source, dest)?;
    let stransid = origin.ctransid.unwrap_or(origin.generation);
    let (from, to, uuid) = (source.to_path_buf(), dest.to_path_buf(), origin.uuid);
    let made = tokio::task::spawn_blocking(move || mark(&from, &to, uuid, stransid))
        .await
        .map_err(|e| Error::path(dest, io::Error::other(e)))?;
    if let Err(e) = made {
        if fs::is_subvolume(dest).unwrap_or(false) {
            if let Err(cleanup) = super::snapshots::delete(dest).await {
                tracing::warn!(path = %dest.display(), error = %cleanup, "cannot delete a half-made base");
            }
        }
        return Err(e);
    }
    let copy = show(dest).await?;
    if copy.changed_since_created() == Some(true) || copy.received_uuid != Some(uuid) {
        return Err(Error::ChangedBeforeReadOnly {
            path: dest.to_path_buf(),
        });
    }
    Ok(copy)
}

fn mark(source: &Path, dest: &Path, uuid: Uuid, stransid: u64) -> Result<(), Error> {
    let refused = |what: &str| {
        Error::path(
            dest,
            io::Error::other(format!("this kernel has no {what} ioctl")),
        )
    };
    if !ioctl::snapshot(source, dest, false)? {
        return Err(refused("snapshot"));
    }
    if !ioctl::set_received(dest, uuid, stransid)? {
        return Err(refused("set-received-subvol"));
    }
    if !ioctl::set_readonly(dest)? {
        return Err(refused("subvolume-setflags"));
    }
    Ok(())
}
