//! A subvolume's referenced bytes from its qgroup, when quotas are on: read from
//! sysfs, which the kernel keeps current at every commit. Never enables quotas, never walks a tree.

use std::io;
use std::path::{Path, PathBuf};

use super::error::Error;
use super::fs::filesystem_uuid;
use super::ioctl::subvolume_id;

/// Where the kernel shows a mounted btrfs's qgroups (Linux 5.9+):
/// `<fsid>/qgroups/0_<subvolume id>/referenced`. The directory exists only
/// while quotas are enabled.
const SYSFS: &str = "/sys/fs/btrfs";

/// The bytes the subvolume whose root is `path` references (its data and
/// metadata, shared extents included: what a full send carries, before
/// compression), from qgroup `0/<id>`. `Ok(None)` when there is no such
/// figure to trust: quotas are off, in simple-quota mode (which counts only
/// extents written since it was enabled), marked inconsistent (until a rescan),
/// the kernel shows no qgroups in sysfs, or the subvolume has no qgroup.
///
/// # Errors
///
/// [`Error::NotSubvolume`] when `path` is not a subvolume's root;
/// [`Error::Path`] when it cannot be opened or asked, or a sysfs file that
/// exists cannot be read.
pub fn referenced(path: &Path) -> Result<Option<u64>, Error> {
    let Some(id) = subvolume_id(path)? else {
        return Ok(None);
    };
    let Some(fsid) = filesystem_uuid(path)? else {
        return Ok(None);
    };
    let qgroups = Path::new(SYSFS).join(fsid.to_string()).join("qgroups");
    read_referenced(&qgroups, id)
}

/// [`referenced`] below a `qgroups` directory.
fn read_referenced(qgroups: &Path, id: u64) -> Result<Option<u64>, Error> {
    // No `mode` file: a kernel before simple quotas (6.7), so full qgroups.
    let mode = read(&qgroups.join("mode"))?;
    if mode.as_deref().is_some_and(|m| m != "qgroup") {
        return Ok(None);
    }
    if read(&qgroups.join("inconsistent"))?.as_deref() == Some("1") {
        return Ok(None);
    }
    let file = qgroups.join(format!("0_{id}")).join("referenced");
    let Some(text) = read(&file)? else {
        return Ok(None);
    };
    text.parse().map(Some).map_err(|_| Error::Path {
        path: file,
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a byte count: {text:?}"),
        ),
    })
}

/// A sysfs file's text, trimmed; `None` when it is not there.
fn read(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Path {
            path: PathBuf::from(path),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qgroups(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    #[test]
    fn only_a_consistent_full_qgroup_figure_counts() {
        let good = qgroups(&[
            ("mode", "qgroup\n"),
            ("inconsistent", "0\n"),
            ("0_256/referenced", "31473664\n"),
        ]);
        assert_eq!(
            read_referenced(good.path(), 256).expect("read"),
            Some(31_473_664)
        );
        assert_eq!(
            read_referenced(good.path(), 257).expect("read"),
            None,
            "no qgroup"
        );
        let old_kernel = qgroups(&[("0_256/referenced", "42")]);
        assert_eq!(
            read_referenced(old_kernel.path(), 256).expect("read"),
            Some(42)
        );
        let stale = qgroups(&[
            ("mode", "qgroup"),
            ("inconsistent", "1"),
            ("0_256/referenced", "42"),
        ]);
        assert_eq!(read_referenced(stale.path(), 256).expect("read"), None);
        let simple = qgroups(&[("mode", "squota"), ("0_256/referenced", "42")]);
        assert_eq!(read_referenced(simple.path(), 256).expect("read"), None);
        let off = tempfile::tempdir().expect("tmp");
        assert_eq!(
            read_referenced(&off.path().join("qgroups"), 256).expect("read"),
            None
        );
        let garbage = qgroups(&[("0_256/referenced", "lots")]);
        assert!(read_referenced(garbage.path(), 256).is_err());
    }
}
