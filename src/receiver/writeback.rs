//! Early writeback during a receive: the target filesystem is committed in the
//! background as the stream arrives, so the commit that confirms the replica
//! has little left to write when the stream ends.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::oneshot::{self, error::TryRecvError};

use crate::btrfs;

/// Bytes of stream before a background commit is worth starting. The kernel
/// starts writing back only past `dirty_background_ratio` (10% of memory:
/// gigabytes on a large appliance), so without early commits a 2 GiB receive
/// left all of it dirty and the confirming commit wrote it out after the last
/// byte arrived: 2.6 s of a 20 s run on the bench's 1 Gbit link, the link
/// idle meanwhile. Measured there (tail after the last byte, share of the
/// link): 256 MiB 0.925, 128 MiB 0.936, 64 MiB 0.944, 32 MiB 0.948,
/// 16 MiB 0.951, 8 MiB 0.951.
pub(super) const MIN_BYTES: u64 = 16 << 20;

/// Commits the filesystem holding a receive's directory while the stream
/// arrives: one commit at a time, each after [`MIN_BYTES`] more bytes and
/// after a pause as long as the last commit took, so commits take at most
/// half the disk's time (a slow disk commits seldom, a fast one often). The
/// data path only counts and never waits. A failed commit is logged and
/// changes nothing; the confirming commit at the end decides.
pub(super) struct Writeback {
    path: PathBuf,
    since: u64,
    /// Hears how long the running commit took, once it is done.
    running: Option<oneshot::Receiver<Duration>>,
    /// No commit starts before this.
    not_before: Option<Instant>,
    /// Commits started, for tests and the trace log.
    started: u64,
}

impl Writeback {
    pub(super) fn new(path: &Path) -> Self {
        Writeback {
            path: path.to_path_buf(),
            since: 0,
            running: None,
            not_before: None,
            started: 0,
        }
    }

    /// Counts `bytes` handed to btrfs receive; starts a commit when it is due.
    pub(super) fn wrote(&mut self, bytes: usize) {
        self.since = self.since.saturating_add(bytes as u64);
        if let Some(r) = self.running.as_mut() {
            match r.try_recv() {
                Err(TryRecvError::Empty) => return,
                done => {
                    // A commit task that died took no time worth pausing for.
                    let took = done.unwrap_or_default();
                    self.not_before = Instant::now().checked_add(took);
                    self.running = None;
                }
            }
        }
        let paused = self.not_before.is_some_and(|t| Instant::now() < t);
        if self.since < MIN_BYTES || paused {
            return;
        }
        self.since = 0;
        self.started += 1;
        tracing::trace!(commits = self.started, "early writeback");
        let path = self.path.clone();
        let (tx, rx) = oneshot::channel();
        self.running = Some(rx);
        tokio::spawn(async move {
            let started = Instant::now();
            if let Err(e) = btrfs::commit_filesystem(&path).await {
                tracing::debug!(path = %path.display(), error = %e, "early writeback failed");
            }
            let _ = tx.send(started.elapsed());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[tokio::test]
    async fn a_commit_starts_after_16_mib_never_while_one_runs_and_pauses_as_long_as_it_took() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = Writeback::new(dir.path());
        w.wrote(MIN_BYTES as usize - 1);
        assert_eq!(w.started, 0, "below the threshold nothing is committed");
        w.wrote(1);
        assert_eq!(w.started, 1);
        // A commit still running holds the next one back.
        let (running, rx) = oneshot::channel();
        let first = w.running.replace(rx);
        w.wrote(64 * MIB);
        assert_eq!(w.started, 1, "one commit at a time");
        first
            .expect("a commit")
            .await
            .expect("the real commit ends");
        // The one that ran took a minute: the next waits that long after it.
        running.send(Duration::from_secs(60)).expect("listened to");
        w.wrote(64 * MIB);
        assert_eq!(w.started, 1, "paused as long as the last commit took");
        // A quick commit lets the bytes counted meanwhile start the next at once.
        w.not_before = None;
        w.wrote(1);
        assert_eq!(w.started, 2);
    }
}
