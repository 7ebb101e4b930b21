//! A run's own bandwidth limit, kept at what its task says while the run goes
//! on, so a limit changed with the CLI reaches a running transfer in seconds.

use std::path::PathBuf;
use std::time::Duration;

use tracing::info;

use crate::bandwidth::Rate;
use crate::store::Store;
use crate::wire::Throttle;

/// How often a running transfer rereads its task's bandwidth limit.
const BWLIMIT_EVERY: Duration = Duration::from_secs(2);

/// Keeps `throttle` at the task's `bwlimit` while the returned guard lives, so
/// a limit changed with the CLI applies to a running transfer within seconds.
pub(super) fn follow(state_dir: PathBuf, task: String, throttle: Throttle) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let Ok(store) = Store::open(&state_dir) else {
            return;
        };
        let mut tick = tokio::time::interval(BWLIMIT_EVERY);
        loop {
            tick.tick().await;
            if let Ok(Some(t)) = store.task(&task) {
                if throttle.rate() != Rate(t.bwlimit) {
                    info!(task = %task, bwlimit = %Rate(t.bwlimit), "bandwidth limit changed");
                    throttle.set(Rate(t.bwlimit), None);
                }
            }
        }
    }))
}

/// Aborts its task when dropped.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
