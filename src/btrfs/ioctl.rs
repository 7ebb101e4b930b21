//! btrfs ioctls that replace a `btrfs` process on every run's path: subvolume
//! facts (`BTRFS_IOC_GET_SUBVOL_INFO`, Linux 4.18+) and read-only snapshots
//! (`BTRFS_IOC_SNAP_CREATE_V2`).
//!
//! A replication looks up subvolumes about ten times (snapshot, inventory,
//! parent checks, verification, retention); as `btrfs` processes, started
//! from a cold page cache, they were a third of a small incremental's time.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::Error;
use super::fs;
use super::subvolume::{Subvolume, Transids};

/// `BTRFS_ROOT_SUBVOL_RDONLY` in the root item's flags (linux/btrfs_tree.h).
const ROOT_SUBVOL_RDONLY: u64 = 1 << 0;

/// The facts about the subvolume whose root is `path`. `Ok(None)` when the
/// kernel lacks the ioctl: the caller asks btrfs-progs instead.
pub(super) fn subvolume_info(path: &Path) -> Result<Option<Subvolume>, Error> {
    let Some(args) = get_subvol_info(path)? else {
        return Ok(None);
    };
    let name_len = args
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(args.name.len());
    let optional = |bytes: [u8; 16]| Some(Uuid::from_bytes(bytes)).filter(|u| !u.is_nil());
    Ok(Some(Subvolume {
        path: path.to_path_buf(),
        name: String::from_utf8_lossy(&args.name[..name_len]).into_owned(),
        uuid: Uuid::from_bytes(args.uuid),
        parent_uuid: optional(args.parent_uuid),
        received_uuid: optional(args.received_uuid),
        readonly: args.flags & ROOT_SUBVOL_RDONLY != 0,
        generation: args.generation,
        otransid: args.otransid,
        ctransid: Some(args.ctransid),
        stransid: args.stransid,
        rtransid: args.rtransid,
        created: time(args.otime),
    }))
}

/// The transaction ids of the subvolume whose root is `path`; `Ok(None)` when
/// the kernel lacks the ioctl (btrfs-progs does not print them all).
///
/// # Errors
///
/// [`Error::NotSubvolume`] when `path` is not a subvolume's root;
/// [`Error::Path`] when it cannot be opened or asked.
pub fn transids(path: &Path) -> Result<Option<Transids>, Error> {
    Ok(get_subvol_info(path)?.map(|a| Transids {
        ctransid: a.ctransid,
        otransid: a.otransid,
        stransid: a.stransid,
        rtransid: a.rtransid,
        received_at: (a.rtransid != 0).then(|| time(a.rtime)).flatten(),
    }))
}

/// The id of the subvolume whose root is `path` (its tree id, what qgroup
/// `0/<id>` counts); `Ok(None)` when the kernel lacks the ioctl.
///
/// # Errors
///
/// As [`transids`].
pub(super) fn subvolume_id(path: &Path) -> Result<Option<u64>, Error> {
    Ok(get_subvol_info(path)?.map(|a| a.treeid))
}

fn time(t: Timespec) -> Option<DateTime<Utc>> {
    i64::try_from(t.sec)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, t.nsec))
}

/// `BTRFS_IOC_GET_SUBVOL_INFO` on `path`, which must be a subvolume's root.
fn get_subvol_info(path: &Path) -> Result<Option<SubvolInfoArgs>, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::path(path, e))?;
    // The ioctl answers for the subvolume *containing* any path; `show` refuses
    // what is not a subvolume's root, and so must we.
    if !meta.is_dir() || !fs::is_subvolume_root(&meta) || !fs::is_btrfs(path)? {
        return Err(Error::NotSubvolume {
            path: path.to_path_buf(),
        });
    }
    let file = File::open(path).map_err(|e| Error::path(path, e))?;
    let mut args = SubvolInfoArgs::zeroed();
    // SAFETY: the fd is open for the duration of the call and `args` is a
    // #[repr(C)] buffer of the kernel struct's size (checked below), which the
    // ioctl number encodes: a mismatch fails with ENOTTY, never overruns.
    match unsafe { btrfs_ioc_get_subvol_info(file.as_raw_fd(), &mut args) } {
        Ok(_) => {}
        Err(nix::errno::Errno::ENOTTY) => return Ok(None),
        Err(e) => return Err(Error::path(path, e.into())),
    }
    Ok(Some(args))
}

/// Creates `dest` as a snapshot of the subvolume `source`, read-only or
/// writable. `Ok(false)` when the kernel refuses the ioctl itself: the caller
/// runs btrfs-progs.
pub(super) fn snapshot(source: &Path, dest: &Path, readonly: bool) -> Result<bool, Error> {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(Error::path(
            dest,
            std::io::Error::other("no parent directory or name"),
        ));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut args = VolArgsV2::zeroed();
    let name = OsStr::as_bytes(name);
    // The name must leave room for its NUL.
    if name.len() >= args.name.len() {
        return Err(Error::path(dest, std::io::Error::other("name too long")));
    }
    args.name[..name.len()].copy_from_slice(name);
    let src = File::open(source).map_err(|e| Error::path(source, e))?;
    let parent = File::open(dir).map_err(|e| Error::path(dir, e))?;
    args.fd = i64::from(src.as_raw_fd());
    args.flags = if readonly { SUBVOL_RDONLY } else { 0 };
    // SAFETY: both fds stay open for the call; `args` is a #[repr(C)] buffer
    // of the kernel struct's size, which the ioctl number encodes.
    match unsafe { btrfs_ioc_snap_create_v2(parent.as_raw_fd(), &args) } {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::ENOTTY) => Ok(false),
        Err(e) => Err(Error::path(dest, e.into())),
    }
}

/// Makes the subvolume `path` read-only (`BTRFS_IOC_SUBVOL_SETFLAGS`).
/// `Ok(false)` when the kernel refuses the ioctl itself.
pub(super) fn set_readonly(path: &Path) -> Result<bool, Error> {
    let file = File::open(path).map_err(|e| Error::path(path, e))?;
    let flags: u64 = SUBVOL_RDONLY;
    // SAFETY: the fd is open for the call and the kernel reads one u64.
    match unsafe { btrfs_ioc_subvol_setflags(file.as_raw_fd(), &flags) } {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::ENOTTY) => Ok(false),
        Err(e) => Err(Error::path(path, e.into())),
    }
}

// BTRFS_IOC_SUBVOL_SETFLAGS = _IOW(BTRFS_IOCTL_MAGIC 0x94, 26, __u64)
nix::ioctl_write_ptr!(btrfs_ioc_subvol_setflags, 0x94, 26, u64);

/// `BTRFS_SUBVOL_RDONLY` in `btrfs_ioctl_vol_args_v2.flags` (and in the
/// subvolume flags `BTRFS_IOC_SUBVOL_SETFLAGS` takes).
const SUBVOL_RDONLY: u64 = 1 << 1;

/// `struct btrfs_ioctl_vol_args_v2` from linux/btrfs.h (4096 bytes): the
/// qgroup union is left zero, the name union used as the name.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; 4040],
}

impl VolArgsV2 {
    fn zeroed() -> Self {
        VolArgsV2 {
            fd: 0,
            transid: 0,
            flags: 0,
            unused: [0; 4],
            name: [0; 4040],
        }
    }
}

const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);

// BTRFS_IOC_SNAP_CREATE_V2 = _IOW(BTRFS_IOCTL_MAGIC 0x94, 23, struct btrfs_ioctl_vol_args_v2)
nix::ioctl_write_ptr!(btrfs_ioc_snap_create_v2, 0x94, 23, VolArgsV2);

/// `struct btrfs_ioctl_timespec` from linux/btrfs.h.
#[repr(C)]
#[derive(Clone, Copy)]
struct Timespec {
    sec: u64,
    nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args` from linux/btrfs.h (504 bytes).
#[repr(C)]
struct SubvolInfoArgs {
    treeid: u64,
    name: [u8; 256],
    parent_id: u64,
    dirid: u64,
    generation: u64,
    flags: u64,
    uuid: [u8; 16],
    parent_uuid: [u8; 16],
    received_uuid: [u8; 16],
    ctransid: u64,
    otransid: u64,
    stransid: u64,
    rtransid: u64,
    ctime: Timespec,
    otime: Timespec,
    stime: Timespec,
    rtime: Timespec,
    reserved: [u64; 8],
}

impl SubvolInfoArgs {
    fn zeroed() -> Self {
        let t = Timespec { sec: 0, nsec: 0 };
        SubvolInfoArgs {
            treeid: 0,
            name: [0; 256],
            parent_id: 0,
            dirid: 0,
            generation: 0,
            flags: 0,
            uuid: [0; 16],
            parent_uuid: [0; 16],
            received_uuid: [0; 16],
            ctransid: 0,
            otransid: 0,
            stransid: 0,
            rtransid: 0,
            ctime: t,
            otime: t,
            stime: t,
            rtime: t,
            reserved: [0; 8],
        }
    }
}

const _: () = assert!(std::mem::size_of::<SubvolInfoArgs>() == 504);

// BTRFS_IOC_GET_SUBVOL_INFO = _IOR(BTRFS_IOCTL_MAGIC 0x94, 60, struct btrfs_ioctl_get_subvol_info_args)
nix::ioctl_read!(btrfs_ioc_get_subvol_info, 0x94, 60, SubvolInfoArgs);

/// Marks the writable subvolume `path` as received from the subvolume
/// `uuid` (`BTRFS_IOC_SET_RECEIVED_SUBVOL`, what btrfs receive does at a
/// stream's end): btrfs receive then finds it by that received_uuid.
/// `stransid` is the source's ctransid. The kernel refuses a read-only
/// subvolume (EROFS), so this comes before [`set_readonly`].
/// `Ok(false)` when the kernel refuses the ioctl itself.
pub(super) fn set_received(path: &Path, uuid: Uuid, stransid: u64) -> Result<bool, Error> {
    let file = File::open(path).map_err(|e| Error::path(path, e))?;
    let mut args = ReceivedSubvolArgs {
        uuid: *uuid.as_bytes(),
        stransid,
        rtransid: 0,
        stime: Timespec { sec: 0, nsec: 0 },
        rtime: Timespec { sec: 0, nsec: 0 },
        flags: 0,
        reserved: [0; 16],
    };
    // SAFETY: the fd is open for the call and `args` is a #[repr(C)] buffer
    // of the kernel struct's size (checked below), which the ioctl number
    // encodes.
    match unsafe { btrfs_ioc_set_received_subvol(file.as_raw_fd(), &mut args) } {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::ENOTTY) => Ok(false),
        Err(e) => Err(Error::path(path, e.into())),
    }
}

/// `struct btrfs_ioctl_received_subvol_args` from linux/btrfs.h (200 bytes).
#[repr(C)]
struct ReceivedSubvolArgs {
    uuid: [u8; 16],
    stransid: u64,
    rtransid: u64,
    stime: Timespec,
    rtime: Timespec,
    flags: u64,
    reserved: [u64; 16],
}

const _: () = assert!(std::mem::size_of::<ReceivedSubvolArgs>() == 200);

// BTRFS_IOC_SET_RECEIVED_SUBVOL = _IOWR(BTRFS_IOCTL_MAGIC 0x94, 37, struct btrfs_ioctl_received_subvol_args)
nix::ioctl_readwrite!(btrfs_ioc_set_received_subvol, 0x94, 37, ReceivedSubvolArgs);
