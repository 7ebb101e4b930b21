//! What a share is beyond its files, as it shapes a run: the nested
//! subvolumes btrfs send leaves out, and the send stream it can take.

use std::path::{Path, PathBuf};

use tracing::warn;

use std::collections::HashMap;

use super::plan::{self, Plan};
use super::Error;
use crate::btrfs::Subvolume;
use crate::store::{SendCompressed, Store, Task};
use crate::{btrfs, capabilities, wire};

/// The share's nested subvolumes (paths relative to it), or the warning
/// that they cannot be listed.
async fn nested(share: &Path) -> Result<Vec<PathBuf>, String> {
    let at = share.to_path_buf();
    match tokio::task::spawn_blocking(move || btrfs::nested_subvolumes(&at)).await {
        Ok(Ok(nested)) => Ok(nested),
        Ok(Err(e)) => Err(format!(
            "cannot list the share's nested subvolumes, which are not replicated: {e}"
        )),
        Err(e) => Err(format!("cannot list the share's nested subvolumes: {e}")),
    }
}

/// Why `base` must not be the parent of `new` (both snapshots of the share),
/// if it must not: a directory that held one of `nested` (the nested
/// subvolumes the share had when `base` was taken) is gone or was replaced.
/// btrfs send cannot delete such a directory (the empty placeholder of the
/// subvolume stays in it), and the target would keep it, renamed
/// `o<inode>-<generation>-0`. A nested subvolume deleted from a directory
/// that stays is no trouble.
pub(super) fn orphaning(base: &Path, new: &Path, nested: &[String]) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    for held in nested {
        let Some(dir) = Path::new(held)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        else {
            continue;
        };
        let ino = |root: &Path| {
            std::fs::symlink_metadata(root.join(dir))
                .ok()
                .map(|m| m.ino())
        };
        if ino(new) != ino(base) || ino(new).is_none() {
            return Some(format!(
                "directory {}, which held the nested subvolume {held}, is gone or replaced since; \
                 btrfs send could not delete it and would leave it on the target",
                dir.display()
            ));
        }
    }
    None
}

/// Finds the share's nested subvolumes and records them on the run's row
/// `row` (a later run checks the directories that held them); returns the
/// warning the run gives, if any.
pub(super) async fn record_nested(store: &Store, task: &Task, row: i64) -> Option<String> {
    let nested = match nested(&task.share).await {
        Ok(nested) => nested,
        Err(warning) => return Some(warning),
    };
    let paths: Vec<String> = nested
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Err(e) = store.set_send_nested(row, &paths) {
        warn!(task = %task.name, error = %e, "cannot record the nested subvolumes");
    }
    nested_warning(&nested)
}

/// The warning a run records for the nested subvolumes it found.
fn nested_warning(nested: &[PathBuf]) -> Option<String> {
    (!nested.is_empty()).then(|| nested_text(nested))
}

/// The warning for nested subvolumes (paths relative to the share).
fn nested_text(nested: &[PathBuf]) -> String {
    let names: Vec<String> = nested.iter().map(|p| p.display().to_string()).collect();
    format!(
        "nested subvolumes are not replicated (btrfs send stops at them): {}; replicate each with a task of its own",
        names.join(", ")
    )
}

/// The send stream a session may use for `task`: version 2 when both
/// appliances support it (holes and preallocated ranges cross as such, not as
/// zeros), else version 1, which every receiver takes. Version 2 carries
/// extents compressed on disk as they are when the task says so (`auto`:
/// where the share's filesystem compresses) and btrfs-progs can.
pub(super) fn send_options(task: &Task, session: &wire::Features) -> btrfs::SendOptions {
    if !session.has(wire::Feature::SendStreamV2) {
        return btrfs::SendOptions::V1;
    }
    let compressed_data = capabilities::send_support().progs_compressed_data
        && match task.send_compressed {
            SendCompressed::Yes => true,
            SendCompressed::No => false,
            SendCompressed::Auto => btrfs::compresses(&task.share).unwrap_or_else(|e| {
                warn!(task = %task.name, error = %e,
                    "cannot tell whether the share's filesystem compresses; sending extents inflated");
                false
            }),
        };
    btrfs::SendOptions {
        proto: 2,
        compressed_data,
    }
}

/// `plan` again now that `taken` exists: a parent whose share had nested
/// subvolumes in directories that are gone since would leave those
/// directories on the target ([`orphaning`]); such bases are passed over for
/// older ones, or a full send.
///
/// # Errors
///
/// The store's.
pub(super) fn recheck(
    store: &Store,
    task_id: i64,
    mut plan: Plan,
    inputs: &plan::Inputs<'_>,
    taken: &Subvolume,
) -> Result<Plan, Error> {
    let mut unfit = HashMap::new();
    while let Some(base) = &plan.parent {
        let nested = store.snapshot_nested(task_id, base.uuid)?;
        let Some(why) = orphaning(&base.path, &taken.path, &nested) else {
            break;
        };
        unfit.insert(base.uuid, why);
        plan = inputs.plan(&unfit);
    }
    Ok(plan)
}
