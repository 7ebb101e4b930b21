//! The sender's housekeeping job: send history retention, which keeps the
//! rows that confirm snapshots still on disk (decision 5 reads them).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::housekeeping::{Chore, Housekeeping, Retention};
use crate::store::Store;

/// Starts send history retention; `None` without one, or when the job
/// scheduler cannot start (logged: it is never worth a sender that does not send).
pub(super) async fn start(state_dir: &Path, retention: Option<&Retention>) -> Option<Housekeeping> {
    let retention = retention?.clone();
    let state_dir = state_dir.to_path_buf();
    let chore = Chore {
        name: "send history retention",
        cron: retention.cron.clone(),
        run: Arc::new(move || {
            let (state_dir, retention) = (state_dir.clone(), retention.clone());
            Box::pin(async move {
                tokio::task::spawn_blocking(move || prune(&state_dir, &retention))
                    .await
                    .map_err(|e| e.to_string())?
            })
        }),
    };
    match Housekeeping::start(vec![chore]).await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "housekeeping is not running");
            None
        }
    }
}

fn prune(state_dir: &Path, retention: &Retention) -> Result<String, String> {
    let mut store = Store::open(state_dir).map_err(|e| e.to_string())?;
    // What each task still holds: those snapshots' confirmations stay.
    let mut on_disk = HashSet::new();
    for task in store.tasks().map_err(|e| e.to_string())? {
        let Ok(entries) = std::fs::read_dir(&task.snapshot_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            on_disk.insert((
                task.name.clone(),
                entry.file_name().to_string_lossy().into_owned(),
            ));
        }
    }
    let cutoff = retention.cutoff(chrono::Utc::now());
    let gone = store
        .prune_send_history(cutoff, &on_disk)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "deleted {gone} send history row(s) older than {} days",
        retention.keep_days
    ))
}
