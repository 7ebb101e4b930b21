//! Facts about paths that need no btrfs-progs: is it btrfs, a subvolume, which filesystem.

use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::statfs::{statfs, BTRFS_SUPER_MAGIC};
use uuid::Uuid;

use super::error::Error;

/// Inode number of every subvolume's root directory (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOLUME_ROOT_INODE: u64 = 256;

/// Whether `path` lives on a btrfs filesystem (statfs magic `0x9123683E`).
///
/// # Errors
///
/// [`Error::Path`] when `path` cannot be stat'ed (missing, no permission).
pub fn is_btrfs(path: &Path) -> Result<bool, Error> {
    let st = statfs(path).map_err(|e| Error::path(path, e.into()))?;
    Ok(st.filesystem_type() == BTRFS_SUPER_MAGIC)
}

/// Whether `path` is the root of a btrfs subvolume (symlinks are followed, as btrfs-progs does).
///
/// btrfs gives each subvolume its own inode namespace whose root directory is always
/// inode 256, and no ordinary directory ever has that number; the same test btrfs-progs
/// uses. An empty directory left where a nested subvolume was when its parent got
/// snapshotted has inode 2, so it is correctly not a subvolume.
///
/// # Errors
///
/// [`Error::Path`] when `path` cannot be stat'ed.
pub fn is_subvolume(path: &Path) -> Result<bool, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::path(path, e))?;
    Ok(meta.is_dir() && is_subvolume_root(&meta) && is_btrfs(path)?)
}

pub(super) fn is_subvolume_root(meta: &Metadata) -> bool {
    meta.ino() == SUBVOLUME_ROOT_INODE
}

/// Whether `a` and `b` are on the same btrfs filesystem (pool), in any subvolumes.
///
/// Neither `st_dev` nor statfs `f_fsid` work: btrfs gives every subvolume its own
/// anonymous device and mixes the subvolume id into `f_fsid`. The filesystem UUID from
/// the `BTRFS_IOC_FS_INFO` ioctl is the pool's identity; it needs no root. Two paths
/// that are not both btrfs are never the same btrfs filesystem.
///
/// # Errors
///
/// [`Error::Path`] when either path cannot be stat'ed or opened, or the
/// filesystem-info ioctl fails on it.
pub fn same_filesystem(a: &Path, b: &Path) -> Result<bool, Error> {
    match (filesystem_uuid(a)?, filesystem_uuid(b)?) {
        (Some(a), Some(b)) => Ok(a == b),
        _ => Ok(false),
    }
}

/// The btrfs filesystem UUID (`fsid`, what `btrfs filesystem show` prints), or None off btrfs.
///
/// # Errors
///
/// [`Error::Path`] when `path` cannot be stat'ed or opened, or the ioctl fails.
pub fn filesystem_uuid(path: &Path) -> Result<Option<Uuid>, Error> {
    if !is_btrfs(path)? {
        return Ok(None);
    }
    // Opening read-only works for directories too; O_PATH fds are refused by ioctl.
    let file = File::open(path).map_err(|e| Error::path(path, e))?;
    let mut args = FsInfoArgs::zeroed();
    // SAFETY: the fd is open for the duration of the call and `args` is a
    // correctly sized, #[repr(C)] buffer matching the kernel's struct.
    unsafe { btrfs_ioc_fs_info(file.as_raw_fd(), &mut args) }
        .map_err(|e| Error::path(path, e.into()))?;
    Ok(Some(Uuid::from_bytes(args.fsid)))
}

/// `struct btrfs_ioctl_fs_info_args` from linux/btrfs.h (1024 bytes).
#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    nodesize: u32,
    sectorsize: u32,
    clone_alignment: u32,
    csum_type: u16,
    csum_size: u16,
    flags: u64,
    generation: u64,
    metadata_uuid: [u8; 16],
    reserved: [u8; 944],
}

impl FsInfoArgs {
    fn zeroed() -> Self {
        FsInfoArgs {
            max_id: 0,
            num_devices: 0,
            fsid: [0; 16],
            nodesize: 0,
            sectorsize: 0,
            clone_alignment: 0,
            csum_type: 0,
            csum_size: 0,
            flags: 0,
            generation: 0,
            metadata_uuid: [0; 16],
            reserved: [0; 944],
        }
    }
}

const _: () = assert!(std::mem::size_of::<FsInfoArgs>() == 1024);

// BTRFS_IOC_FS_INFO = _IOR(BTRFS_IOCTL_MAGIC 0x94, 31, struct btrfs_ioctl_fs_info_args)
nix::ioctl_read!(btrfs_ioc_fs_info, 0x94, 31, FsInfoArgs);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_btrfs_paths_are_not_btrfs() {
        // /proc is procfs everywhere.
        assert!(!is_btrfs(Path::new("/proc")).unwrap());
        assert!(!is_subvolume(Path::new("/proc")).unwrap());
        assert!(!same_filesystem(Path::new("/proc"), Path::new("/proc")).unwrap());
    }

    #[test]
    fn missing_paths_are_errors_naming_the_path() {
        let e = is_btrfs(Path::new("/nonexistent/ferry")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ferry"), "{e}");
    }
}
