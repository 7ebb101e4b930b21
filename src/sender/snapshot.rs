//! A task's snapshots: which are its own (the uuids its send rows record,
//! never a name alone), and taking the next one between the pre- and
//! post-snapshot hooks, under a name never used. Not cancellable between the
//! hooks: a hook that froze something is always followed by the one that
//! thaws it.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;

use chrono::Utc;
use tracing::{debug, info, warn};

use super::hooks::{self, Facts, Hook};
use super::plan::{self, Owned};
use super::Error;
use crate::config::HookSettings;
use crate::store::{Store, Task};
use crate::{btrfs, names};

/// The task's own snapshots in its snapshot directory (see [`plan::owned`]);
/// snapshots its rows name without a uuid get it recorded now. Everything
/// else there is left alone.
///
/// # Errors
///
/// The store's, and btrfs's when the directory cannot be listed.
pub async fn owned(store: &Store, task: &Task) -> Result<Owned, Error> {
    let dir = &task.snapshot_dir;
    if !dir.exists() {
        return Ok(Owned::default());
    }
    let subvolumes = btrfs::list(dir).await?;
    let records = store.snapshot_records(task.id)?;
    let others = store.snapshots_of_others(task.id)?;
    let found = plan::owned(subvolumes, &records, &others);
    for a in &found.adopt {
        store.set_send_snapshot_uuid(a.row, a.uuid)?;
        info!(task = %task.name, row = a.row, uuid = %a.uuid,
            "recorded the uuid of a snapshot this task's history names");
    }
    if !found.foreign.is_empty() {
        debug!(task = %task.name, dir = %dir.display(), subvolumes = ?found.foreign,
            "left alone: subvolumes in the snapshot directory that this task did not take");
    }
    Ok(found)
}

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
    defaults: &HookSettings,
    take: impl Future<Output = Result<btrfs::Subvolume, Error>>,
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
    let taken = take.await;
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

/// Takes the next read-only snapshot of the task's share for the run `row`,
/// named `<share>_<task>_<UTC time>`, with `-2`, `-3`... when that name is in
/// `taken` (what the target holds) or in the snapshot directory. The name
/// goes on the row before the snapshot exists, its uuid right after: the row
/// is the record that makes it this task's.
///
/// # Errors
///
/// [`Error::SnapshotDir`], the store's, btrfs's, [`Error::NotReadOnly`],
/// [`Error::CarriesReceivedUuid`].
pub async fn take(
    store: &Store,
    task: &Task,
    share: &str,
    row: i64,
    mut taken: HashSet<String>,
) -> Result<btrfs::Subvolume, Error> {
    let dir = &task.snapshot_dir;
    std::fs::create_dir_all(dir).map_err(|source| Error::SnapshotDir {
        path: dir.clone(),
        source,
    })?;
    let entries = std::fs::read_dir(dir).map_err(|source| Error::SnapshotDir {
        path: dir.clone(),
        source,
    })?;
    taken.extend(
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned()),
    );
    taken.extend(store.snapshot_records(task.id)?.into_iter().map(|r| r.name));
    let base = names::snapshot_name(share, &task.name, Utc::now());
    let name = plan::unique_name(&base, &taken);
    store.set_send_snapshot(row, &name)?;
    let path = dir.join(&name);
    let snapshot = btrfs::snapshot_to_send(&task.share, &path).await?;
    store.set_send_snapshot_uuid(row, snapshot.uuid)?;
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
/// One that carries a received_uuid is refused before a byte is streamed:
/// btrfs send would announce it under that uuid, which the target holds for
/// the snapshot's share already or can never confirm as this snapshot.
///
/// # Errors
///
/// [`Error::NotReadOnly`], [`Error::CarriesReceivedUuid`].
pub fn sendable(snapshot: btrfs::Subvolume) -> Result<btrfs::Subvolume, Error> {
    if !snapshot.readonly {
        return Err(Error::NotReadOnly {
            path: snapshot.path,
        });
    }
    if let Some(received_uuid) = snapshot.received_uuid {
        return Err(Error::CarriesReceivedUuid {
            path: snapshot.path,
            received_uuid,
        });
    }
    Ok(snapshot)
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
            otransid: 9,
            stransid: 0,
            rtransid: 0,
        };
        let err = sendable(sub(false)).expect_err("writable");
        assert!(matches!(err, Error::NotReadOnly { .. }));
        assert!(!err.is_temporary());
        assert!(err
            .to_string()
            .contains("photos_t_20261129T000000Z is not read-only"));
        assert_eq!(sendable(sub(true)).expect("read-only"), sub(true));
        // Pins issue 10, fault 4: a snapshot carrying a received_uuid was
        // streamed whole, then failed "received_uuid is R, expected U".
        let mut received = sub(true);
        received.received_uuid = Some(Uuid::from_u128(9));
        let err = sendable(received).expect_err("carries a received_uuid");
        assert!(matches!(err, Error::CarriesReceivedUuid { .. }));
        assert!(!err.is_temporary());
        assert!(err
            .to_string()
            .contains("make a writable snapshot of the share"));
    }
}
