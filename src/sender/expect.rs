//! What a run expects its stream to come to, for the progress estimate: the last
//! comparable stream of the task, or for a full send the share's qgroup figure.

use tracing::debug;

use crate::btrfs;
use crate::store::{Basis, Expected, Kind, Store, Task};

/// Decides what send row `row` (of `task`, a `kind` stream) expects to send and
/// records it on the row; `None` when there is no basis.
///
/// - A full send: the share's referenced bytes from its qgroup when quotas are
///   on (read after the snapshot, whose creation committed them; never a
///   walk of the tree, never quotas turned on), else the task's last full stream.
/// - An incremental: the task's last succeeded incremental stream.
///
/// Never fails the run: a figure that cannot be read is no basis, logged at debug.
pub(super) async fn expected(store: &Store, task: &Task, kind: Kind, row: i64) -> Option<Expected> {
    let referenced = match kind {
        Kind::Full => {
            let share = task.share.clone();
            let read = tokio::task::spawn_blocking(move || btrfs::referenced(&share)).await;
            match read
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                Ok(bytes) => bytes.filter(|&b| b > 0),
                Err(e) => {
                    debug!(task = %task.name, error = %e, "no qgroup figure for the estimate");
                    None
                }
            }
        }
        Kind::Incremental => None,
    };
    let expected = match referenced {
        Some(bytes) => Some(Expected {
            bytes,
            basis: Basis::Referenced,
        }),
        None => match store.last_stream(task.id, kind) {
            Ok(last) => last.map(|bytes| Expected {
                bytes,
                basis: Basis::LastStream,
            }),
            Err(e) => {
                debug!(task = %task.name, error = %e, "no last stream for the estimate");
                None
            }
        },
    }?;
    debug!(task = %task.name, bytes = expected.bytes, basis = %expected.basis, "expected stream size");
    if let Err(e) = store.set_send_expected(row, expected) {
        debug!(task = %task.name, error = %e, "cannot record the expected stream size");
    }
    Some(expected)
}
