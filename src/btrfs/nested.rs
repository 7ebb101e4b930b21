//! The subvolumes nested directly inside a subvolume, asked of the kernel
//! (`BTRFS_IOC_GET_SUBVOL_ROOTREF`, `BTRFS_IOC_INO_LOOKUP_USER`, Linux 4.18+).
//!
//! `btrfs send` stops at a nested subvolume: its contents are not part of the
//! stream. Reading the share's root references costs two ioctls per nested
//! subvolume, where walking the share's tree would read every directory.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{fs, Error};

/// Paths, relative to `subvolume`, of the subvolumes directly inside it,
/// sorted. Subvolumes inside those are theirs, not listed here.
///
/// # Errors
///
/// [`Error::NotSubvolume`] when `subvolume` is not a subvolume's root;
/// [`Error::Path`] when the kernel refuses the lookups (before Linux 4.18:
/// `ENOTTY`, named in the message).
pub fn nested_subvolumes(subvolume: &Path) -> Result<Vec<PathBuf>, Error> {
    if !fs::is_subvolume(subvolume)? {
        return Err(Error::NotSubvolume {
            path: subvolume.to_path_buf(),
        });
    }
    let dir = File::open(subvolume).map_err(|e| Error::path(subvolume, e))?;
    let mut found = Vec::new();
    for (treeid, dirid) in root_refs(&dir, subvolume)? {
        found.push(lookup(&dir, subvolume, treeid, dirid)?);
    }
    found.sort();
    Ok(found)
}

/// (tree id, directory inode) of every root reference of the subvolume `dir` is in.
fn root_refs(dir: &File, path: &Path) -> Result<Vec<(u64, u64)>, Error> {
    let mut refs = Vec::new();
    let mut args = RootrefArgs::zeroed();
    loop {
        // SAFETY: the fd is open for the call; `args` is a #[repr(C)] buffer
        // of the kernel struct's size, which the ioctl number encodes.
        let more = match unsafe { btrfs_ioc_get_subvol_rootref(dir.as_raw_fd(), &mut args) } {
            Ok(_) => false,
            // More references than one call returns: `min_treeid` says where
            // the next call starts.
            Err(nix::errno::Errno::EOVERFLOW) => true,
            Err(e) => return Err(Error::path(path, e.into())),
        };
        let n = usize::from(args.num_items).min(args.rootref.len());
        refs.extend(args.rootref[..n].iter().map(|r| (r.treeid, r.dirid)));
        if !more {
            return Ok(refs);
        }
        let next = args.min_treeid;
        args = RootrefArgs::zeroed();
        args.min_treeid = next;
    }
}

/// The path, relative to the subvolume `dir` is the root of, of the nested
/// subvolume `treeid` whose entry is in directory inode `dirid`.
fn lookup(dir: &File, path: &Path, treeid: u64, dirid: u64) -> Result<PathBuf, Error> {
    let mut args = InoLookupUserArgs::zeroed();
    args.dirid = dirid;
    args.treeid = treeid;
    // SAFETY: as above; the kernel NUL-terminates both strings it writes.
    unsafe { btrfs_ioc_ino_lookup_user(dir.as_raw_fd(), &mut args) }
        .map_err(|e| Error::path(path, e.into()))?;
    let text = |bytes: &[u8]| {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::ffi::OsStr::from_bytes(&bytes[..end]).to_owned()
    };
    let (within, name) = (text(&args.path), text(&args.name));
    // `path` is the directory's path from the subvolume root, "" for the root
    // itself, with a trailing '/' otherwise.
    Ok(PathBuf::from(within).join(name))
}

/// One entry of `struct btrfs_ioctl_get_subvol_rootref_args`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Rootref {
    treeid: u64,
    dirid: u64,
}

/// `struct btrfs_ioctl_get_subvol_rootref_args` from linux/btrfs.h (4096 bytes).
#[repr(C)]
struct RootrefArgs {
    min_treeid: u64,
    rootref: [Rootref; 255],
    num_items: u8,
    align: [u8; 7],
}

impl RootrefArgs {
    fn zeroed() -> Self {
        RootrefArgs {
            min_treeid: 0,
            rootref: [Rootref {
                treeid: 0,
                dirid: 0,
            }; 255],
            num_items: 0,
            align: [0; 7],
        }
    }
}

const _: () = assert!(std::mem::size_of::<RootrefArgs>() == 4096);

/// `struct btrfs_ioctl_ino_lookup_user_args` from linux/btrfs.h (4096 bytes).
#[repr(C)]
struct InoLookupUserArgs {
    dirid: u64,
    treeid: u64,
    name: [u8; 256],
    path: [u8; 4080 - 255 - 1],
}

impl InoLookupUserArgs {
    fn zeroed() -> Self {
        InoLookupUserArgs {
            dirid: 0,
            treeid: 0,
            name: [0; 256],
            path: [0; 4080 - 255 - 1],
        }
    }
}

const _: () = assert!(std::mem::size_of::<InoLookupUserArgs>() == 4096);

// BTRFS_IOC_GET_SUBVOL_ROOTREF = _IOWR(0x94, 61, struct btrfs_ioctl_get_subvol_rootref_args)
nix::ioctl_readwrite!(btrfs_ioc_get_subvol_rootref, 0x94, 61, RootrefArgs);
// BTRFS_IOC_INO_LOOKUP_USER = _IOWR(0x94, 62, struct btrfs_ioctl_ino_lookup_user_args)
nix::ioctl_readwrite!(btrfs_ioc_ino_lookup_user, 0x94, 62, InoLookupUserArgs);
