//! What a share is beyond its files, as it shapes a run: the nested
//! subvolumes btrfs send leaves out, and the send stream it can take.

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::store::{SendCompressed, Task};
use crate::{btrfs, capabilities, wire};

/// The warning a run records when the share has nested subvolumes (or they
/// cannot be listed); `None` when it has none.
pub(super) async fn nested_warning(share: &Path) -> Option<String> {
    let at = share.to_path_buf();
    let found = tokio::task::spawn_blocking(move || btrfs::nested_subvolumes(&at)).await;
    match found {
        Ok(Ok(nested)) if nested.is_empty() => None,
        Ok(Ok(nested)) => Some(nested_text(&nested)),
        Ok(Err(e)) => Some(format!(
            "cannot list the share's nested subvolumes, which are not replicated: {e}"
        )),
        Err(e) => Some(format!("cannot list the share's nested subvolumes: {e}")),
    }
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
