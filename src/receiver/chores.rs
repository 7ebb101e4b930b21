//! The receiver's housekeeping jobs: the audit of replicas on disk, and
//! receive history retention.

use std::sync::Arc;

use super::audit::audit;
use super::shared::Shared;
use crate::housekeeping::{Chore, Housekeeping};

/// Starts the jobs `shared`'s config asks for; `None` when there are none,
/// or when the job scheduler cannot start (logged: housekeeping is never
/// worth a receiver that does not serve).
pub(super) async fn start(shared: &Arc<Shared>) -> Option<Housekeeping> {
    let mut chores = Vec::new();
    if let Some(cron) = &shared.config.audit {
        let shared = shared.clone();
        chores.push(Chore {
            name: "replica audit",
            cron: cron.clone(),
            run: Arc::new(move || {
                let shared = shared.clone();
                Box::pin(async move { audit(&shared).await.map_err(|e| e.to_string()) })
            }),
        });
    }
    if let Some(retention) = shared.config.history.clone() {
        let shared = shared.clone();
        chores.push(Chore {
            name: "receive history retention",
            cron: retention.cron.clone(),
            run: Arc::new(move || {
                let (shared, retention) = (shared.clone(), retention.clone());
                Box::pin(async move {
                    let cutoff = retention.cutoff(chrono::Utc::now());
                    let gone = tokio::task::spawn_blocking(move || {
                        shared.db(|s| s.prune_receive_history(cutoff))
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                    Ok(format!(
                        "deleted {gone} receive history row(s) older than {} days",
                        retention.keep_days
                    ))
                })
            }),
        });
    }
    if chores.is_empty() {
        return None;
    }
    match Housekeeping::start(chores).await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "housekeeping is not running");
            None
        }
    }
}
