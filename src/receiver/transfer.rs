//! The Begin request, from admission to `received` or `failed`: history row,
//! btrfs receive fed from the data connection, verification, retention.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};
use uuid::Uuid;

use super::admit::{admit, Admitted};
use super::link::Link;
use super::outcome::{Failure, Next, Seen, Tell, Verified};
use super::prepare::prepare;
use super::reply::{database, refused, tell};
use super::retention::{asked, prune};
use super::row::Row;
use super::shared::{Parked, Pending, Shared};
use super::stats::Refusal;
use super::stream::stream;
use crate::btrfs::Receive;
use crate::replica_layout::{delete_own, delete_partials, point_latest};
use crate::store::{self, Kind, NewReceive, NewReplica, Pool, Status};
use crate::wire::{Begin, Failed, Feature, Meta, Prefix, Ready, Reason, Received, ResumeAt};

/// How long a btrfs receive whose input was cut gets to exit before it is killed.
const ABANDON_GRACE: Duration = Duration::from_secs(3);

/// Removes the session from the data routing table however the transfer ends.
struct Expecting<'a>(&'a Shared, Uuid);

impl Drop for Expecting<'_> {
    fn drop(&mut self) {
        self.0.forget_data(self.1);
    }
}

/// Runs one `Begin` to its end and replies accordingly.
pub(super) async fn run<S>(s: &mut Link<'_, S>, b: Begin) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shared = s.shared;
    // Admission may wait for a receive slot. Meanwhile the peer is kept alive
    // and listened to: one that gives up (abort, a closed connection) leaves
    // the queue at once.
    let admission = tokio::select! {
        a = admit(shared, &s.peer, &b) => a,
        gone = s.conn.recv_alive() => {
            tracing::info!(peer = %s.peer.addr, appliance = %s.peer.name(), share = %b.share,
                "the sender gave up while waiting for a receive slot: {}",
                match gone { Ok(m) => m.kind().to_string(), Err(e) => e.to_string() });
            return Next::Close;
        }
    };
    let mut admitted = match admission {
        Ok(a) => a,
        Err(reply) => {
            tracing::info!(peer = %s.peer.addr, appliance = %s.peer.name(), share = %b.share,
                snapshot = %b.snapshot, "refused receive: {}", refusal(&reply));
            return reply_or_close(s, reply).await;
        }
    };
    let pool = admitted.pool.clone();
    let new = NewReceive {
        source: s.peer.name(),
        source_uuid: Some(s.peer.uuid),
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
    let mut row = match Row::begin(shared, &new) {
        Ok(row) => row,
        Err(e) => return reply_or_close(s, database(&e)).await,
    };
    let (dir, mut receive, start) = match admitted.resumed.take() {
        Some(parked) => {
            let at = parked.prefix.offset();
            row.resumed_from(at);
            let why = format!(
                "connection lost after {at} bytes; resumed by receive {}",
                row.id()
            );
            if let Err(e) =
                shared.db(|st| st.finish_receive(parked.row, Status::Failed, Some(&why), None))
            {
                tracing::warn!(row = parked.row, error = %e, "cannot close a resumed receive's row");
            }
            (parked.dir, Some(parked.receive), parked.prefix)
        }
        None => match start_fresh(shared, &pool, s.peer.uuid, &b, &mut row).await {
            Ok((dir, receive)) => (dir, Some(receive), Prefix::new()),
            Err(reply) => {
                tracing::warn!(peer = %s.peer.addr, appliance = %s.peer.name(), share = %b.share,
                    snapshot = %b.snapshot, "receive failed: {}", refusal(&reply));
                return reply_or_close(s, reply).await;
            }
        },
    };
    let session = Uuid::new_v4();
    let (tx, data) = oneshot::channel();
    shared.expect_data(
        session,
        Pending {
            peer: s.peer.appliance.fingerprint.clone(),
            prefix: start.clone(),
            tx,
        },
    );
    let expecting = Expecting(shared, session);
    tracing::info!(peer = %s.peer.addr, appliance = %s.peer.name(), share = %b.share, pool = %pool.name,
        snapshot = %b.snapshot, parent = ?b.parent.as_ref().map(|p| &p.name), %session,
        offset = start.offset(), features = %s.peer.features, "receive started");

    let mut seen = Seen {
        pool: Some(pool.clone()),
        ..Seen::default()
    };
    let resume = (start.offset() > 0).then(|| ResumeAt {
        offset: start.offset(),
        blake3: start.digest(),
    });
    let outcome = match s.conn.send(&Meta::Ready(Ready { session, resume })).await {
        Ok(()) => stream(s, &b, &dir, &mut receive, data, &row, &mut seen, &start).await,
        Err(e) => {
            seen.resumable = (start.offset() > 0).then(|| start.clone());
            Err(Failure::from_meta(Err(e), start.offset(), s.peer.name()))
        }
    };
    drop(expecting);
    match outcome {
        Ok(verified) => {
            if let Some(rx) = receive.take() {
                abandon(rx).await;
            }
            let next = succeed(s, &b, &pool, &dir, verified, &mut row).await;
            drop(admitted);
            next
        }
        Err(f) => {
            let prefix = seen.resumable.take();
            match (prefix, receive.take()) {
                // Nothing taken yet: a resume would only start over.
                (Some(prefix), Some(rx))
                    if s.peer.features.has(Feature::Resume) && prefix.offset() > 0 =>
                {
                    let parked = Parked {
                        source: s.peer.uuid,
                        begin: b.clone(),
                        dir,
                        receive: rx,
                        prefix,
                        row: row.id(),
                        until: Instant::now() + shared.config.resume_window,
                    };
                    park(s, admitted, parked, f, &mut row).await
                }
                (_, rx) => {
                    if let Some(rx) = rx {
                        abandon(rx).await;
                    }
                    fail(s, &b, &pool.name, &dir, f, &mut row, &seen).await
                }
            }
        }
    }
}

/// The refusal's reason, for the log.
fn refusal(reply: &Meta) -> &str {
    match reply {
        Meta::Refused(r) => &r.reason,
        _ => "",
    }
}

/// A new receive: its directory ready, btrfs receive started. On failure the
/// row is failed and the refusal to send is returned.
async fn start_fresh(
    shared: &Shared,
    pool: &Pool,
    source: Uuid,
    b: &Begin,
    row: &mut Row<'_>,
) -> Result<(PathBuf, Receive), Meta> {
    let dir = prepare(shared, pool, source, b).await.map_err(|e| {
        let reason = e.to_string();
        row.fail(&reason);
        refused(reason)
    })?;
    let receive = Receive::start_with(&shared.config.btrfs, &dir).map_err(|e| {
        let reason = format!("cannot start btrfs receive: {e}");
        row.fail(&reason);
        refused(reason)
    })?;
    Ok((dir, receive))
}

/// Keeps a receive whose connection broke for a resume (see `park`), tells
/// the peer if it is still there, and records the row as parked.
async fn park<S>(
    s: &mut Link<'_, S>,
    admitted: Admitted<'_>,
    parked: Parked,
    f: Failure,
    row: &mut Row<'_>,
) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shared = s.shared;
    let window = shared.config.resume_window;
    let at = parked.prefix.offset();
    let reason = format!(
        "{}; parked at {at} bytes for a resume within {}",
        f.reason,
        humantime::format_duration(window)
    );
    row.park(at, window, &reason);
    tracing::warn!(peer = %s.peer.addr, appliance = %s.peer.name(), share = %parked.begin.share,
        snapshot = %parked.begin.snapshot, offset = at, "receive parked: {reason}");
    let Admitted { lock, .. } = admitted;
    shared.park(lock, parked);
    match f.tell {
        Tell::Failed => {
            let verdict = Meta::Failed(Failed {
                reason,
                permanent: false,
            });
            reply_or_close(s, verdict).await
        }
        _ => Next::Close,
    }
}

async fn reply_or_close<S>(s: &mut Link<'_, S>, reply: Meta) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    if let Meta::Refused(r) = &reply {
        s.shared.stats().refused(Refusal::of(r));
    }
    match s.conn.send(&reply).await {
        Ok(()) => Next::CONTINUE,
        Err(_) => Next::Close,
    }
}

/// Closes btrfs receive's input and gives it a moment to exit; kills it after.
async fn abandon(rx: Receive) {
    let _ = timeout(ABANDON_GRACE, rx.finish()).await;
}

/// Records a verified replica, points `latest` at it, answers `received`, prunes.
async fn succeed<S>(
    s: &mut Link<'_, S>,
    b: &Begin,
    pool: &Pool,
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
        pool_path: &pool.path,
        source: s.peer.name(),
        source_uuid: s.peer.uuid,
        share: &b.share,
        snapshot: &b.snapshot,
        received_uuid: v.received_uuid,
        stream_bytes: v.stats.raw_bytes(),
        created_at: b
            .created
            .filter(|_| s.peer.features.has(Feature::RetentionGrid)),
        ctransid: v.ctransid,
    };
    let committed = match row.commit(&new) {
        Ok(id) => id,
        Err(e) => {
            let f = match e {
                store::Error::PoolGone(_) => Failure::pool_removed(&pool.name, &shared.me.name),
                e => Failure::failed(format!("cannot record the replica: {e}")),
            };
            let seen = Seen {
                commit: true,
                received: Some(b.snapshot.clone()),
                resumable: None,
                pool: None,
            };
            return fail(s, b, &pool.name, dir, f, row, &seen).await;
        }
    };
    if let Err(e) = point_latest(dir, &b.snapshot) {
        // The replica is verified and recorded; `latest` is repaired at the next start.
        tracing::error!(dir = %dir.display(), error = %e, "cannot point latest at the new replica");
    }
    tracing::info!(peer = %s.peer.addr, appliance = %s.peer.name(), share = %b.share, pool = %pool.name,
        snapshot = %b.snapshot, bytes = v.stats.raw_bytes(), wire_bytes = v.stats.wire_bytes,
        received_uuid = %v.received_uuid, "receive succeeded");
    let sent = s
        .conn
        .send(&Meta::Received(Received {
            received_uuid: v.received_uuid,
        }))
        .await;
    shared.settling(s.peer.uuid, &b.share);
    // Admission checked the grid, so this cannot fail here; if it did, the
    // replica stays and the next receive prunes.
    let policy = asked(
        shared,
        &s.peer,
        b.keep,
        b.preserve.as_deref(),
        b.zone.as_deref(),
    );
    match (
        policy,
        shared.db(|st| st.replicas(&pool.name, s.peer.uuid, &b.share)),
    ) {
        (Ok(policy), Ok(held)) => {
            prune(shared, dir, &held, &policy, committed).await;
        }
        (Err(e), _) => tracing::warn!(error = %e, "retention skipped"),
        (_, Err(e)) => tracing::warn!(error = %e, "retention skipped: cannot list replicas"),
    }
    match sent {
        Ok(()) => Next::CONTINUE,
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
    s: &mut Link<'_, S>,
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
    let shared = s.shared;
    let mut own = vec![b.snapshot.as_str()];
    own.extend(seen.received.as_deref());
    let after = shared.config.btrfs_timeout;
    let source = s.peer.uuid;
    let cleaned = async {
        delete_own(dir, &own).await.map_err(|e| e.to_string())?;
        let held = shared
            .db(|st| st.replicas(pool, source, &b.share))
            .map_err(|e| e.to_string())?;
        let attempted = shared
            .db(|st| st.received_names(pool, source, &b.share))
            .map_err(|e| e.to_string())?;
        delete_partials(dir, &held, &attempted)
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
    tracing::warn!(peer = %s.peer.addr, appliance = %s.peer.name(), share = %b.share, pool,
        snapshot = %b.snapshot, permanent = f.permanent, "receive failed: {reason}");
    match f.tell {
        Tell::Failed => {
            let verdict = Meta::Failed(Failed {
                reason,
                permanent: f.permanent,
            });
            match reply_or_close(s, verdict).await {
                Next::Continue { .. } => Next::Continue {
                    stray_commit: !seen.commit,
                },
                Next::Close => Next::Close,
            }
        }
        Tell::PeerAborted => Next::CONTINUE,
        Tell::Lost => Next::Close,
        Tell::Abort => {
            tell(&mut s.conn, Meta::Abort(Reason { reason })).await;
            Next::Close
        }
        Tell::Error => {
            tell(&mut s.conn, Meta::Error(Reason { reason })).await;
            Next::Close
        }
    }
}
