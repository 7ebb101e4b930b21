//! What users do to subvolumes by hand, as the tests need it done: flipping
//! the read-only flag with the plain ioctl (as older btrfs-progs did, keeping
//! any received_uuid), and editing a read-only subvolume that way.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `BTRFS_SUBVOL_RDONLY`.
const RDONLY: u64 = 1 << 1;

// BTRFS_IOC_SUBVOL_SETFLAGS = _IOW(0x94, 26, __u64)
nix::ioctl_write_ptr!(btrfs_ioc_subvol_setflags, 0x94, 26, u64);

/// Sets or clears a subvolume's read-only flag with `BTRFS_IOC_SUBVOL_SETFLAGS`
/// alone: unlike `btrfs property set` in btrfs-progs 6.x, nothing clears its
/// received_uuid.
pub fn set_readonly(path: &Path, readonly: bool) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let flags = if readonly { RDONLY } else { 0 };
    // SAFETY: the fd is open for the call and the kernel reads one u64.
    unsafe { btrfs_ioc_subvol_setflags(file.as_raw_fd(), &flags) }
        .unwrap_or_else(|e| panic!("SUBVOL_SETFLAGS {}: {e}", path.display()));
}

/// Makes a read-only subvolume writable, runs `edit` on it, and makes it
/// read-only again: how a user frees space in old snapshots.
pub fn edit_readonly(path: &Path, edit: impl FnOnce(&Path)) {
    set_readonly(path, false);
    edit(path);
    set_readonly(path, true);
}
