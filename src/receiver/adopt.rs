//! Taking back what a lost state database forgot: replica subvolumes found in a
//! pool's `.ferry/<source uuid>/<share>/` are recorded again when they are
//! verified receives nobody changed, so the next run is incremental and
//! retention applies to them again.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::btrfs::{self, Subvolume, Transids};
use crate::names;
use crate::replica_layout::{repair_latest, replica_dirs, FERRY_DIR, LATEST};
use crate::store::{self, NewReplica, Pool, Store};

/// How far past the transaction that marked a replica received its ctransid
/// may be and still be btrfs receive's own doing: the receive's last inode
/// updates are written in the commits that follow `SET_RECEIVED_SUBVOL` and
/// setting it read-only. Measured on Linux 6.18 over full and incremental
/// receives, with and without other writers: ctransid settles at rtransid + 2.
/// A later change means the replica was edited after it arrived (made
/// writable behind btrfs-progs' back, which would otherwise clear its
/// received_uuid), and an incremental onto it would not reproduce the source.
pub const RECEIVE_SETTLE: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Btrfs(#[from] btrfs::Error),
    #[error("pool {pool} at {}: {why}; mount it and try again", path.display())]
    PoolUnavailable {
        pool: String,
        path: PathBuf,
        why: String,
    },
    #[error("cannot point {}/{LATEST} at {newest}: {source}", dir.display())]
    Latest {
        dir: PathBuf,
        newest: String,
        source: std::io::Error,
    },
}

/// One replica line on disk: a share of one source appliance in one pool.
#[derive(Debug)]
pub struct Line {
    pub pool: Pool,
    pub source_uuid: Uuid,
    pub share: String,
    pub dir: PathBuf,
    /// Its subvolumes, by name, with what adoption makes of each.
    pub found: Vec<(String, Verdict)>,
}

/// What adoption makes of one subvolume in a replica directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A verified receive nobody changed since.
    Adopt {
        received_uuid: Uuid,
        rtransid: u64,
        received_at: Option<DateTime<Utc>>,
    },
    /// Recorded already.
    Recorded,
    /// Not adopted, and why.
    Skip(String),
}

impl Line {
    /// The subvolumes it would adopt.
    pub fn adoptable(&self) -> impl Iterator<Item = &str> {
        self.found
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Adopt { .. }))
            .map(|(n, _)| n.as_str())
    }
}

/// What adoption makes of `sub`, given its transaction ids (`None`: the kernel
/// cannot tell them, so an edit could not be ruled out).
pub fn judge(sub: &Subvolume, transids: Option<Transids>) -> Verdict {
    if names::validate_snapshot(&sub.name).is_err() || sub.name == LATEST {
        return Verdict::Skip("not a snapshot name ferry sends".into());
    }
    let Some(received_uuid) = sub.received_uuid else {
        return Verdict::Skip("no received_uuid: not a complete receive (a partial?)".into());
    };
    if !sub.readonly {
        return Verdict::Skip("writable: changed, or changeable, since it was received".into());
    }
    let Some(t) = transids else {
        return Verdict::Skip(
            "this kernel does not tell when it last changed (BTRFS_IOC_GET_SUBVOL_INFO, Linux \
             4.18), so an edit since it was received cannot be ruled out"
                .into(),
        );
    };
    if t.rtransid == 0 {
        return Verdict::Skip("never marked received".into());
    }
    if t.ctransid > t.rtransid.saturating_add(RECEIVE_SETTLE) {
        return Verdict::Skip(format!(
            "changed in transaction {}, after it was received in transaction {}: edited since \
             it was received",
            t.ctransid, t.rtransid
        ));
    }
    Verdict::Adopt {
        received_uuid,
        rtransid: t.rtransid,
        received_at: t.received_at,
    }
}

/// The replica lines in `pool`, each subvolume judged. Lines of
/// `only_source` alone when given.
///
/// # Errors
///
/// [`AdoptError::PoolUnavailable`] when the pool is not the mounted btrfs
/// filesystem it was added on; the store's and btrfs's errors.
pub async fn survey(
    store: &Store,
    pool: &Pool,
    only_source: Option<Uuid>,
) -> Result<Vec<Line>, AdoptError> {
    check_pool(pool)?;
    let ferry = pool.path.join(FERRY_DIR);
    if !ferry.is_dir() {
        return Ok(Vec::new());
    }
    let mut lines = Vec::new();
    for (source_uuid, share, dir) in replica_dirs(&ferry)? {
        if only_source.is_some_and(|u| u != source_uuid) {
            continue;
        }
        let recorded = store.replicas(&pool.name, source_uuid, &share)?;
        let mut found = Vec::new();
        for sub in btrfs::list(&dir).await? {
            let verdict = if recorded.iter().any(|r| r.snapshot == sub.name) {
                Verdict::Recorded
            } else {
                judge(&sub, btrfs::transids(&sub.path)?)
            };
            found.push((sub.name.clone(), verdict));
        }
        lines.push(Line {
            pool: pool.clone(),
            source_uuid,
            share,
            dir,
            found,
        });
    }
    Ok(lines)
}

/// Records `line`'s adoptable replicas under the appliance name `source`, in
/// the order they were received, then points `latest` at the line's newest
/// replica. Returns how many were recorded.
///
/// # Errors
///
/// The store's (nothing is recorded then), or [`AdoptError::Latest`].
pub fn record(store: &Store, line: &Line, source: &str) -> Result<usize, AdoptError> {
    let mut adopt: Vec<_> = line
        .found
        .iter()
        .filter_map(|(name, v)| match v {
            Verdict::Adopt {
                received_uuid,
                rtransid,
                received_at,
            } => Some((name.as_str(), *received_uuid, *rtransid, *received_at)),
            _ => None,
        })
        .collect();
    adopt.sort_by_key(|(name, _, rtransid, _)| (*rtransid, name.to_string()));
    let rows: Vec<_> = adopt
        .iter()
        .map(|(name, received_uuid, _, received_at)| {
            (
                NewReplica {
                    pool: &line.pool.name,
                    pool_path: &line.pool.path,
                    source,
                    source_uuid: line.source_uuid,
                    share: &line.share,
                    snapshot: name,
                    received_uuid: *received_uuid,
                    // Unknown: the stream that brought it was in the lost database.
                    stream_bytes: 0,
                    created_at: taken_at(name),
                    // Recorded at its first check, after a commit.
                    ctransid: None,
                },
                received_at.unwrap_or_else(store::now),
            )
        })
        .collect();
    let n = store.adopt_replicas(&rows)?;
    let held = store.replicas(&line.pool.name, line.source_uuid, &line.share)?;
    if let Some(newest) = held.first() {
        repair_latest(&line.dir, Some(&newest.snapshot)).map_err(|source| AdoptError::Latest {
            dir: line.dir.clone(),
            newest: newest.snapshot.clone(),
            source,
        })?;
    }
    Ok(n)
}

/// When the source took the snapshot, from its name's `_<yyyymmddThhmmssZ>`
/// end (the retention grid needs it; the Begin that said so was in the lost
/// database).
fn taken_at(snapshot: &str) -> Option<DateTime<Utc>> {
    let (_, stamp) = snapshot.rsplit_once('_')?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// The pool must be the mounted btrfs filesystem it was added on: replicas
/// are only looked for where the receiver would put them.
fn check_pool(pool: &Pool) -> Result<(), AdoptError> {
    let fail = |why: String| AdoptError::PoolUnavailable {
        pool: pool.name.clone(),
        path: pool.path.clone(),
        why,
    };
    if !btrfs::is_subvolume(&pool.path)? {
        return Err(fail(
            "not a mounted btrfs subvolume (is it unmounted?)".into(),
        ));
    }
    match (btrfs::filesystem_uuid(&pool.path)?, pool.fs_uuid) {
        (Some(found), Some(added)) if found != added => Err(fail(format!(
            "on btrfs filesystem {found}, but the pool was added on {added}"
        ))),
        (None, _) => Err(fail("not on btrfs".into())),
        _ => Ok(()),
    }
}

/// `dir` relative to its pool, for messages: `.ferry/<uuid>/<share>`.
pub fn shown(pool: &Path, dir: &Path) -> String {
    dir.strip_prefix(pool).unwrap_or(dir).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &str, readonly: bool, received: bool) -> Subvolume {
        Subvolume {
            path: PathBuf::from("/p").join(name),
            name: name.into(),
            uuid: Uuid::new_v4(),
            parent_uuid: None,
            received_uuid: received.then(Uuid::new_v4),
            readonly,
            generation: 1,
            ctransid: Some(1),
            created: None,
            otransid: 1,
            stransid: 0,
            rtransid: 0,
        }
    }

    fn t(ctransid: u64, rtransid: u64) -> Option<Transids> {
        Some(Transids {
            ctransid,
            otransid: rtransid,
            stransid: 5,
            rtransid,
            received_at: None,
        })
    }

    #[test]
    fn the_snapshot_time_comes_from_the_name() {
        let t = taken_at("photos_daily_20260101T020304Z").expect("time");
        assert_eq!(t.to_rfc3339(), "2026-01-01T02:03:04+00:00");
        assert_eq!(taken_at("hand-made"), None);
    }

    #[test]
    fn only_read_only_receives_nobody_changed_are_adopted() {
        let ok = sub("photos_t_20260101T000000Z", true, true);
        assert!(matches!(
            judge(&ok, t(21, 19)),
            Verdict::Adopt { rtransid: 19, .. }
        ));
        assert!(matches!(judge(&ok, t(19, 19)), Verdict::Adopt { .. }));
        let edited = judge(&ok, t(22, 19));
        assert_eq!(
            edited,
            Verdict::Skip(
                "changed in transaction 22, after it was received in transaction 19: edited \
                 since it was received"
                    .into()
            )
        );
        assert!(matches!(judge(&ok, None), Verdict::Skip(w) if w.contains("cannot be ruled out")));
        assert!(matches!(judge(&ok, t(3, 0)), Verdict::Skip(w) if w == "never marked received"));
        let writable = sub("photos_t_20260101T000000Z", false, true);
        assert!(
            matches!(judge(&writable, t(19, 19)), Verdict::Skip(w) if w.starts_with("writable"))
        );
        let partial = sub("photos_t_20260101T000000Z", true, false);
        assert!(
            matches!(judge(&partial, t(19, 19)), Verdict::Skip(w) if w.starts_with("no received_uuid"))
        );
        let odd = sub(".hidden", true, true);
        assert!(matches!(judge(&odd, t(19, 19)), Verdict::Skip(_)));
    }
}
