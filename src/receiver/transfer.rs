//! One receive, from an admitted `Begin` to `Received` or `Failed`: history row,
//! btrfs receive fed from the data connection, the checks of Commit, retention.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::timeout;
use uuid::Uuid;

use super::admit::admit;
use super::disk;
use super::session::{refused, tell, Begin, Session};
use super::shared::{Pending, Shared};
use super::stream::stream;
use crate::btrfs::Receive;
use crate::store::{Kind, NewReceive, NewReplica, Status};
use crate::wire::{self, Meta, StreamStats};

/// What the session does after a transfer.
pub(super) enum Next {
    Continue,
    Close,
}

/// How long a btrfs receive whose input was cut gets to exit before it is killed.
const ABANDON_GRACE: Duration = Duration::from_secs(3);

/// What a transfer got to before it ended; `fail` needs it to clean up and reply.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The sender's Commit arrived, so no stray Commit is still on its way.
    pub commit: bool,
    /// The subvolume btrfs receive reported creating, once it exited 0.
    pub received: Option<String>,
}

/// Why a receive failed, and whom to tell.
pub(super) struct Failure {
    reason: String,
    tell: Tell,
}

enum Tell {
    /// Reply `failed`; the session goes on. Sent as soon as the failure is known,
    /// even before the sender's Commit: the sender reads it as the verdict on the
    /// Commit it sends next, and that Commit is then swallowed (`stray_commit`).
    Failed,
    /// Shutdown: send `abort`, close.
    Abort,
    /// Protocol violation: send `error`, close.
    Error,
    /// The peer aborted: nothing to say, the session goes on.
    PeerAborted,
    /// The meta connection is gone.
    Lost,
}

impl Failure {
    pub(super) fn failed(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            tell: Tell::Failed,
        }
    }

    pub(super) fn shutdown() -> Self {
        Failure {
            reason: "interrupted by shutdown".into(),
            tell: Tell::Abort,
        }
    }

    /// A meta message (or its absence) that ends a transfer before its verdict.
    pub(super) fn from_meta(m: Result<Meta, wire::Error>, bytes: u64) -> Self {
        match m {
            Ok(Meta::Abort { reason }) => Failure {
                reason: format!("the sender aborted after {bytes} bytes: {reason}"),
                tell: Tell::PeerAborted,
            },
            Ok(other) => Failure {
                reason: format!(
                    "protocol violation: {} in the middle of a transfer",
                    other.kind()
                ),
                tell: Tell::Error,
            },
            Err(e) => Failure {
                reason: format!("connection lost after {bytes} bytes ({e})"),
                tell: Tell::Lost,
            },
        }
    }
}

/// The receive's history row. Dropped unfinished (a panic, a cancelled task) it
/// is still finished as failed: no row stays `running`.
pub(super) struct Row<'a> {
    shared: &'a Shared,
    id: i64,
    open: bool,
}

impl Row<'_> {
    fn fail(&mut self, reason: &str) {
        self.open = false;
        let id = self.id;
        if let Err(e) = self
            .shared
            .db(|s| s.finish_receive(id, Status::Failed, Some(reason), None))
        {
            tracing::error!(row = id, error = %e, "cannot record a failed receive");
        }
    }

    pub(super) fn progress(&self, stats: &StreamStats) {
        let (id, raw, wire) = (self.id, stats.raw_bytes(), stats.wire_bytes);
        if let Err(e) = self.shared.db(|s| s.set_receive_progress(id, raw, wire)) {
            tracing::warn!(row = id, error = %e, "cannot record receive progress");
        }
    }
}

impl Drop for Row<'_> {
    fn drop(&mut self) {
        if self.open {
            self.fail("the receive session ended unexpectedly; see the receiver's log");
        }
    }
}

/// Removes the session from the data routing table however the transfer ends.
struct Expecting<'a>(&'a Shared, Uuid);

impl Drop for Expecting<'_> {
    fn drop(&mut self) {
        self.0.forget_data(self.1);
    }
}

/// Runs one `Begin` to its end and replies accordingly.
pub(super) async fn run<S>(s: &mut Session<'_, S>, b: Begin) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shared = s.shared;
    let admitted = match admit(s, &b).await {
        Ok(a) => a,
        Err(reply) => {
            tracing::info!(peer = %s.addr, appliance = %s.peer.name, share = %b.share,
                snapshot = %b.snapshot, "refused receive: {}", refusal(&reply));
            return match s.conn.send(&reply).await {
                Ok(()) => Next::Continue,
                Err(_) => Next::Close,
            };
        }
    };
    let pool = &admitted.pool;
    let new = NewReceive {
        source: &s.peer.name,
        source_uuid: Some(s.source_uuid),
        share: &b.share,
        pool: &pool.name,
        snapshot: &b.snapshot,
        parent: b.parent.as_ref().map(|p| p.name.as_str()),
        kind: if b.parent.is_some() {
            Kind::Incremental
        } else {
            Kind::Full
        },
    };
    let id = match shared.db(|st| st.begin_receive(&new)) {
        Ok(id) => id,
        Err(e) => {
            let reply = refused(format!("receiver state database: {e}"));
            return reply_or_close(s, reply).await;
        }
    };
    let mut row = Row {
        shared,
        id,
        open: true,
    };
    let dir = match disk::prepare(shared, &pool.name, &pool.path, s.source_uuid, &b).await {
        Ok(dir) => dir,
        Err(reason) => {
            row.fail(&reason);
            tracing::warn!(peer = %s.addr, appliance = %s.peer.name, share = %b.share,
                snapshot = %b.snapshot, "receive failed: {reason}");
            return reply_or_close(s, refused(reason)).await;
        }
    };
    let mut receive = match Receive::start(&dir) {
        Ok(r) => Some(r),
        Err(e) => {
            let reason = format!("cannot start btrfs receive: {e}");
            row.fail(&reason);
            return reply_or_close(s, refused(reason)).await;
        }
    };
    let session = Uuid::new_v4();
    let (tx, data) = oneshot::channel();
    shared.expect_data(
        session,
        Pending {
            peer: s.peer.fingerprint.clone(),
            tx,
        },
    );
    let expecting = Expecting(shared, session);
    tracing::info!(peer = %s.addr, appliance = %s.peer.name, share = %b.share, pool = %pool.name,
        snapshot = %b.snapshot, parent = ?b.parent.as_ref().map(|p| &p.name), %session, "receive started");

    let mut seen = Seen::default();
    let outcome = match s.conn.send(&Meta::Ready { session }).await {
        Ok(()) => stream(s, &b, &dir, &mut receive, data, &row, &mut seen).await,
        Err(e) => Err(Failure::from_meta(Err(e), 0)),
    };
    drop(expecting);
    if let Some(rx) = receive.take() {
        abandon(rx).await;
    }
    match outcome {
        Ok(verified) => {
            let next = succeed(s, &b, pool, &dir, verified, &mut row).await;
            drop(admitted);
            next
        }
        Err(f) => fail(s, &b, &pool.name, &dir, f, &mut row, &seen).await,
    }
}

fn refusal(reply: &Meta) -> &str {
    match reply {
        Meta::Refused { reason, .. } => reason,
        _ => "",
    }
}

async fn reply_or_close<S>(s: &mut Session<'_, S>, reply: Meta) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    match s.conn.send(&reply).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close,
    }
}

/// Closes btrfs receive's input and gives it a moment to exit; kills it after.
async fn abandon(rx: Receive) {
    let _ = timeout(ABANDON_GRACE, rx.finish()).await;
}

/// What passed every check.
pub(super) struct Verified {
    pub received_uuid: Uuid,
    pub stats: StreamStats,
}

/// Records a verified replica, points `latest` at it, answers `received`, prunes.
async fn succeed<S>(
    s: &mut Session<'_, S>,
    b: &Begin,
    pool: &crate::store::Pool,
    dir: &Path,
    v: Verified,
    row: &mut Row<'_>,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shared = s.shared;
    row.progress(&v.stats);
    let new = NewReplica {
        pool: &pool.name,
        source: &s.peer.name,
        source_uuid: s.source_uuid,
        share: &b.share,
        snapshot: &b.snapshot,
        received_uuid: v.received_uuid,
        stream_bytes: v.stats.raw_bytes(),
    };
    let committed = match shared.db(|st| st.commit_replica(row.id, &new)) {
        Ok(id) => id,
        Err(e) => {
            let f = Failure::failed(format!("cannot record the replica: {e}"));
            let seen = Seen {
                commit: true,
                received: Some(b.snapshot.clone()),
            };
            return fail(s, b, &pool.name, dir, f, row, &seen).await;
        }
    };
    row.open = false;
    if let Err(e) = disk::point_latest(dir, &b.snapshot) {
        // The replica is verified and recorded; `latest` is repaired at the next start.
        tracing::error!(dir = %dir.display(), error = %e, "cannot point latest at the new replica");
    }
    tracing::info!(peer = %s.addr, appliance = %s.peer.name, share = %b.share, pool = %pool.name,
        snapshot = %b.snapshot, bytes = v.stats.raw_bytes(), wire_bytes = v.stats.wire_bytes,
        received_uuid = %v.received_uuid, "receive succeeded");
    let sent = s
        .conn
        .send(&Meta::Received {
            received_uuid: v.received_uuid,
        })
        .await;
    match shared.db(|st| st.replicas(&pool.name, s.source_uuid, &b.share)) {
        Ok(held) => disk::prune(shared, dir, &held, b.keep, committed).await,
        Err(e) => tracing::warn!(error = %e, "retention skipped: cannot list replicas"),
    }
    match sent {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close,
    }
}

/// Deletes whatever the receive left, finishes the row failed, tells the peer.
///
/// This session's own subvolume (`dir/<snapshot>`, which `prepare` proved was
/// not there before, and the name btrfs receive reported) goes even when it is
/// read-only and complete: it failed verification. Other complete subvolumes
/// stay; only writable partials are swept with it.
async fn fail<S>(
    s: &mut Session<'_, S>,
    b: &Begin,
    pool: &str,
    dir: &Path,
    f: Failure,
    row: &mut Row<'_>,
    seen: &Seen,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut own = vec![b.snapshot.as_str()];
    own.extend(seen.received.as_deref());
    let after = s.shared.config.btrfs_timeout;
    let cleaned = async {
        disk::delete_own(dir, &own)
            .await
            .map_err(|e| e.to_string())?;
        let held = s
            .shared
            .db(|st| st.replicas(pool, s.source_uuid, &b.share))
            .map_err(|e| e.to_string())?;
        disk::delete_partials(dir, &held)
            .await
            .map_err(|e| e.to_string())
    };
    // Bounded: the share's lock is held until this returns. A timeout kills the
    // delete (kill_on_drop); startup recovery deletes what is left.
    let cleaned = timeout(after, cleaned)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {after:?}")));
    let reason = match cleaned {
        Ok(_) => f.reason,
        Err(e) => format!(
            "{}; the partial subvolume could not be deleted ({e}) and will be at the next start",
            f.reason
        ),
    };
    row.fail(&reason);
    tracing::warn!(peer = %s.addr, appliance = %s.peer.name, share = %b.share, pool,
        snapshot = %b.snapshot, "receive failed: {reason}");
    match f.tell {
        Tell::Failed => {
            s.stray_commit = !seen.commit;
            reply_or_close(s, Meta::Failed { reason }).await
        }
        Tell::PeerAborted => Next::Continue,
        Tell::Lost => Next::Close,
        Tell::Abort => {
            tell(&mut s.conn, Meta::Abort { reason }).await;
            Next::Close
        }
        Tell::Error => {
            tell(&mut s.conn, Meta::Error { reason }).await;
            Next::Close
        }
    }
}
