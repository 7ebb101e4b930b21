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

/// Whether new data written under `path` is compressed: the share's
/// `compression` property (`btrfs property set PATH compression zstd`; `none`
/// turns it off), else the filesystem's `compress=` or `compress-force=`
/// mount option.
///
/// # Errors
///
/// [`Error::Path`] when the path or `/proc/self/mountinfo` cannot be read.
pub fn compresses(path: &Path) -> Result<bool, Error> {
    if let Some(property) = compression_property(path)? {
        return Ok(!matches!(property.as_str(), "" | "none" | "no"));
    }
    let resolved = path.canonicalize().map_err(|e| Error::path(path, e))?;
    let info = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(info).map_err(|e| Error::path(info, e))?;
    Ok(mount_compresses(&text, &resolved))
}

/// The `btrfs.compression` xattr btrfs keeps the property in, if set.
fn compression_property(path: &Path) -> Result<Option<String>, Error> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| Error::path(path, std::io::Error::other(e)))?;
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for its length.
    let n = unsafe {
        nix::libc::getxattr(
            c_path.as_ptr(),
            c"btrfs.compression".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(nix::libc::ENODATA) => Ok(None),
            _ => Err(Error::path(path, e)),
        };
    }
    let n = usize::try_from(n).unwrap_or_default().min(buf.len());
    Ok(Some(
        String::from_utf8_lossy(&buf[..n])
            .trim_end_matches('\0')
            .to_string(),
    ))
}

/// Whether the btrfs mount that holds `path` (the longest mount point above
/// it in `mountinfo`) has a compress option.
fn mount_compresses(mountinfo: &str, path: &Path) -> bool {
    let mut best: Option<(usize, bool)> = None;
    for line in mountinfo.lines() {
        let Some((mount, rest)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = mount.split(' ').nth(4) else {
            continue;
        };
        let point = unescape(point);
        if !path.starts_with(&point) {
            continue;
        }
        let mut fields = rest.split(' ');
        let (fstype, options) = (fields.next(), fields.nth(1).unwrap_or_default());
        let compress = fstype == Some("btrfs")
            && options.split(',').any(|o| {
                o.starts_with("compress=") || o.starts_with("compress-force=") || o == "compress"
            });
        let depth = point.components().count();
        // Later lines win at equal depth: they are mounted on top.
        if best.is_none_or(|(d, _)| depth >= d) {
            best = Some((depth, compress));
        }
    }
    best.is_some_and(|(_, compress)| compress)
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out).into()
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
    fn the_innermost_btrfs_mount_decides_compression() {
        let info = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
            44 22 0:39 / /mnt/pool rw,relatime - btrfs /dev/loop0 rw,compress=zstd:3,space_cache=v2,subvolid=5,subvol=/\n\
            45 22 0:40 / /mnt/plain rw - btrfs /dev/loop1 rw,space_cache=v2,subvolid=5,subvol=/\n\
            46 45 0:41 / /mnt/plain/a\\040b rw - btrfs /dev/loop2 rw,compress-force=lzo\n";
        assert!(mount_compresses(info, Path::new("/mnt/pool/share")));
        assert!(!mount_compresses(info, Path::new("/mnt/plain/share")));
        assert!(mount_compresses(info, Path::new("/mnt/plain/a b/x")));
        assert!(!mount_compresses(info, Path::new("/srv")));
        // A prefix of a name is not a parent directory.
        assert!(!mount_compresses(info, Path::new("/mnt/pool2/x")));
    }

    #[test]
    fn missing_paths_are_errors_naming_the_path() {
        let e = is_btrfs(Path::new("/nonexistent/ferry")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ferry"), "{e}");
    }
}
