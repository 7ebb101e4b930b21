//! Taking a task's snapshot: the pre-snapshot hook, the read-only snapshot
//! named for its time, and the post-snapshot hook after every attempt. Not
//! cancellable in between: a hook that froze something is always followed by
//! the one that thaws it.

use std::path::Path;

use chrono::{DurationRound, TimeDelta, Utc};
use tracing::warn;

use super::hooks::{self, Facts, Hook};
use super::Error;
use crate::config::HookSettings;
use crate::store::Task;
use crate::{btrfs, names};

/// Runs the pre-snapshot hook, takes the snapshot, runs the post-snapshot
/// hook (even when the snapshot failed), and returns the snapshot.
///
/// # Errors
///
/// [`Error::Hook`] when the pre-snapshot hook fails (no snapshot is taken,
/// and post-snapshot does not run: nothing was frozen); what [`take`]
/// returns. A failing post-snapshot hook is logged; the snapshot stands.
pub async fn take_with_hooks(
    task: &Task,
    share: &str,
    defaults: &HookSettings,
) -> Result<btrfs::Subvolume, Error> {
    let mut facts = Facts {
        task: task.name.clone(),
        share: task.share.display().to_string(),
        target: task.target.clone(),
        status: "running".into(),
        ..Facts::default()
    };
    if let Some(cmd) = Hook::PreSnapshot.command(task, defaults) {
        hooks::run(Hook::PreSnapshot, cmd, &facts, defaults.timeout).await?;
    }
    let taken = take(task, share).await;
    if let Some(cmd) = Hook::PostSnapshot.command(task, defaults) {
        match &taken {
            Ok(s) => {
                facts.snapshot = s.path.display().to_string();
                facts.status = "snapshotted".into();
            }
            Err(e) => {
                facts.status = "failed".into();
                facts.error = e.to_string();
            }
        }
        if let Err(e) = hooks::run(Hook::PostSnapshot, cmd, &facts, defaults.timeout).await {
            warn!(task = %task.name, error = %e, "the post-snapshot hook failed; the snapshot stands");
        }
    }
    taken
}

/// Takes the read-only snapshot `<share>_<task>_<UTC time>` in the task's
/// snapshot directory.
///
/// # Errors
///
/// [`Error::SnapshotDir`], [`Error::SnapshotExists`], btrfs errors, and
/// [`Error::NotReadOnly`].
pub async fn take(task: &Task, share: &str) -> Result<btrfs::Subvolume, Error> {
    let dir = &task.snapshot_dir;
    std::fs::create_dir_all(dir).map_err(|source| Error::SnapshotDir {
        path: dir.clone(),
        source,
    })?;
    // Names carry the time to the second; a run in the same second as the
    // previous one (a manual run right after another) waits for the next.
    let mut now = Utc::now();
    let mut name = names::snapshot_name(share, &task.name, now);
    if dir.join(&name).exists() {
        let next = now
            .duration_trunc(TimeDelta::seconds(1))
            .unwrap_or(now)
            .checked_add_signed(TimeDelta::seconds(1))
            .unwrap_or(now);
        tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
        now = Utc::now().max(next);
        name = names::snapshot_name(share, &task.name, now);
    }
    let path = dir.join(&name);
    if path.exists() {
        return Err(Error::SnapshotExists { path });
    }
    let snapshot = btrfs::snapshot_readonly(&task.share, &path).await?;
    sendable(snapshot)
}

/// The share's `ctransid` after a filesystem commit, so that every write made
/// before is counted; `None` where btrfs cannot tell.
///
/// # Errors
///
/// btrfs errors (the share is gone, not a subvolume, the sync failed).
pub async fn share_ctransid(share: &Path) -> Result<Option<u64>, Error> {
    btrfs::commit_filesystem(share).await?;
    Ok(btrfs::show(share).await?.ctransid)
}

/// `snapshot` if it may be sent: only a read-only snapshot is a stable send
/// source (btrfs send itself insists), and only it can become a common base.
///
/// # Errors
///
/// [`Error::NotReadOnly`].
pub fn sendable(snapshot: btrfs::Subvolume) -> Result<btrfs::Subvolume, Error> {
    if snapshot.readonly {
        Ok(snapshot)
    } else {
        Err(Error::NotReadOnly {
            path: snapshot.path,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use uuid::Uuid;

    use super::*;

    /// Pins: the sender refuses to send a snapshot that is not read-only, with
    /// the path in the reason; a read-only one passes unchanged.
    #[test]
    fn only_a_read_only_snapshot_is_sendable() {
        let sub = |readonly| btrfs::Subvolume {
            path: PathBuf::from("/pool/.ferry-snapshots/photos/photos_t_20261129T000000Z"),
            name: "photos_t_20261129T000000Z".into(),
            uuid: Uuid::from_u128(7),
            parent_uuid: None,
            received_uuid: None,
            readonly,
            generation: 9,
            ctransid: Some(8),
            created: None,
        };
        let err = sendable(sub(false)).expect_err("writable");
        assert!(matches!(err, Error::NotReadOnly { .. }));
        assert!(!err.is_temporary());
        assert!(err
            .to_string()
            .contains("photos_t_20261129T000000Z is not read-only"));
        assert_eq!(sendable(sub(true)).expect("read-only"), sub(true));
    }
}
