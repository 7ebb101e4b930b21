//! The middle of a receive: wait for the data connection, feed btrfs receive while
//! watching the meta connection, then check everything the Commit claims.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::timeout;

use super::error::RouteError;
use super::link::Link;
use super::outcome::{Failure, Seen, Tell, Verified};
use super::pump::{pump, PumpError};
use super::row::Row;
use super::shared::DataConn;
use super::watch::watching;
use super::writeback::Writeback;
use crate::btrfs::{self, Receive};
use crate::replica_layout::settled_ctransid;
use crate::wire::{self, Begin, Commit, Meta, Prefix, StreamStats};

/// Runs the transfer from `Ready` to a verified subvolume. `receive` is taken
/// when btrfs receive is finished; on error the caller abandons what is left,
/// or parks it when `seen.resumable` says where a resume would continue.
///
/// The meta connection is read for the whole transfer, through btrfs receive's
/// exit and the checks after it: a receiver that stops reading stops answering
/// pings, and the sender declares it dead after its keepalive's `dead_after`.
/// `start` is what this receive already holds of the stream (a resumed one).
#[allow(clippy::too_many_arguments)]
pub(super) async fn stream<S>(
    s: &mut Link<'_, S>,
    b: &Begin,
    dir: &Path,
    receive: &mut Option<Receive>,
    data: oneshot::Receiver<Result<DataConn, RouteError>>,
    row: &Row<'_>,
    seen: &mut Seen,
    start: &Prefix,
) -> Result<Verified, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let wait = s.shared.config.data_timeout;
    // The sender may commit before its data connection is even handed over
    // (a small stream fits in the socket buffers), or before we have read it all.
    let mut commit = None;
    let at = start.offset();
    let arrived = watching(s, timeout(wait, data), &mut commit, seen, at).await;
    // A resumed receive still holds what it held: it may be parked again.
    let hold = |seen: &mut Seen| {
        if at > 0 {
            seen.resumable = Some(start.clone());
        }
    };
    let conn = match arrived {
        Ok(Ok(Ok(Ok(conn)))) => conn,
        Ok(Ok(Ok(Err(reason)))) => return Err(Failure::failed(reason.to_string())),
        Ok(Ok(Err(_))) => {
            return Err(Failure::failed(
                "the data connection was lost before it was handed over",
            ))
        }
        Ok(Err(_)) => {
            hold(seen);
            return Err(Failure::failed(format!(
                "the data connection did not arrive within {wait:?} after Ready"
            )));
        }
        Err(f) => {
            if f.tell == Tell::Lost {
                hold(seen);
            }
            return Err(f);
        }
    };
    tracing::debug!(data_peer = %conn.addr, offset = at, "data connection attached");
    let Some(proc) = receive.as_mut() else {
        return Err(Failure::failed("btrfs receive is not running"));
    };
    let mut reader = conn.reader;
    let mut writeback = Writeback::new(dir);
    let pumped = pump(
        s,
        &mut reader,
        proc,
        row,
        wait,
        &mut commit,
        seen,
        &mut writeback,
    )
    .await;
    let n = reader.prefix().offset();
    let stats = match pumped {
        Ok(stats) => stats,
        Err(e) => {
            row.progress(&reader.stats());
            if let PumpError::Data(_) = e {
                // A sender that failed on its own side drops the data
                // connection, then says why on the meta connection: prefer its
                // reason over "connection lost", and keep nothing for a resume
                // it gave up on.
                if let Ok(said @ Ok(Meta::Abort(_))) =
                    timeout(REASON_WAIT, s.conn.recv_alive()).await
                {
                    return Err(Failure::from_meta(said, n, s.peer.name()));
                }
            }
            if e.resumable() {
                seen.resumable = Some(reader.prefix());
            }
            return Err(match e {
                PumpError::Meta(f) => f,
                PumpError::Data(e) => Failure::failed(data_failure(&e, n, s.peer.name())),
                PumpError::ReadStalled => Failure::failed(format!(
                    "the data stream stalled: nothing arrived for {wait:?} after {n} bytes"
                )),
                PumpError::WriteStalled => Failure::failed(format!(
                    "btrfs receive took nothing for {wait:?} after {n} bytes"
                )),
                PumpError::Write(e) => {
                    // btrfs receive quit reading; its own exit says why.
                    let why = match receive.take() {
                        Some(rx) => match timeout(wait, rx.finish()).await {
                            Ok(Err(be)) => receive_failure(&be),
                            _ => format!("btrfs receive stopped reading after {n} bytes: {e}"),
                        },
                        None => e.to_string(),
                    };
                    Failure::failed(why)
                }
            });
        }
    };
    row.progress(&stats);
    let Some(rx) = receive.take() else {
        return Err(Failure::failed("btrfs receive is not running"));
    };
    let config = &s.shared.config;
    let (finish_after, show_after) = (config.finish_timeout, config.btrfs_timeout);
    // A timeout drops `finish`, and with it the child: kill_on_drop kills it.
    let finish = timeout(finish_after, rx.finish());
    let finished = watching(s, finish, &mut commit, seen, n).await?;
    let received = finished
        .map_err(|_| {
            Failure::failed(format!(
                "btrfs receive did not exit within {finish_after:?} after its stream ended; killed it"
            ))
        })?
        .map_err(|e| Failure::failed(receive_failure(&e)))?;
    seen.received = Some(received.name.clone());
    let claims = match commit.take() {
        Some(c) => c,
        None => wait_commit(s, wait, n, seen).await?,
    };
    check_stream(&stats, &claims).map_err(Failure::failed)?;
    if received.name != b.snapshot {
        // The same stream would carry the same subvolume again.
        return Err(Failure::permanent(format!(
            "the stream carried subvolume {:?}, but Begin named {}",
            received.name, b.snapshot
        )));
    }
    // The Commit is in; from here any message but a keepalive is a violation.
    let mut done = Some(claims);
    let path = dir.join(&b.snapshot);
    let show = timeout(show_after, btrfs::show(&path));
    let shown = watching(s, show, &mut done, seen, n).await?;
    let sub = shown
        .map_err(|_| {
            Failure::failed(format!(
                "btrfs subvolume show of the received subvolume did not finish within {show_after:?}"
            ))
        })?
        .map_err(|e| Failure::failed(format!("cannot inspect the received subvolume: {e}")))?;
    if !sub.readonly {
        return Err(Failure::failed("the received subvolume is not read-only"));
    }
    match sub.received_uuid {
        Some(u) if u == b.snapshot_uuid => {
            // What a later check compares with to tell whether the replica
            // changed after it was received.
            let settle = timeout(show_after, settled_ctransid(&path));
            let ctransid = watching(s, settle, &mut done, seen, n)
                .await?
                .ok()
                .flatten();
            Ok(Verified {
                received_uuid: u,
                stats,
                ctransid,
            })
        }
        Some(u) => Err(Failure::permanent(format!(
            "received_uuid is {u}, expected {}",
            b.snapshot_uuid
        ))),
        None => Err(Failure::permanent(format!(
            "the received subvolume has no received_uuid, expected {}",
            b.snapshot_uuid
        ))),
    }
}

/// How long a broken data connection waits for the sender to say why.
const REASON_WAIT: Duration = Duration::from_secs(2);

/// The Commit after the stream ended, if it did not come during it.
async fn wait_commit<S>(
    s: &mut Link<'_, S>,
    wait: Duration,
    n: u64,
    seen: &mut Seen,
) -> Result<Commit, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shared = s.shared;
    let m = tokio::select! {
        m = timeout(wait, s.conn.recv_alive()) => m,
        () = shared.shutting_down() => return Err(Failure::shutdown()),
    };
    match m {
        Ok(Ok(Meta::Commit(c))) => {
            seen.commit = true;
            Ok(c)
        }
        Ok(other) => Err(Failure::from_meta(other, n, s.peer.name())),
        Err(_) => Err(Failure::failed(format!(
            "no commit within {wait:?} after the stream ended"
        ))),
    }
}

/// The data connection from the sender `peer` broke: closed, or sent
/// something that is not a stream.
fn data_failure(e: &wire::Error, bytes: u64, peer: &str) -> String {
    match e {
        wire::Error::Io(_) | wire::Error::Closed | wire::Error::Truncated { .. } => format!(
            "{peer} closed the data connection after {bytes} bytes without a verdict (it \
             stopped, crashed or gave up on this receiver)"
        ),
        other => format!("bad data stream from {peer} after {bytes} bytes: {other}"),
    }
}

/// "btrfs receive exited 1: <stderr>", or what else went wrong running it.
pub(super) fn receive_failure(e: &btrfs::Error) -> String {
    match e {
        btrfs::Error::Failed { status, stderr, .. } => {
            let how = match status.strip_prefix("exit status: ") {
                Some(code) => format!("exited {code}"),
                None => format!("ended ({status})"),
            };
            format!("btrfs receive {how}: {stderr}")
        }
        other => format!("btrfs receive: {other}"),
    }
}

/// The Commit's claims against what arrived: the whole stream, from its first
/// byte (a resumed receive's hash covers the prefix it continued).
pub(super) fn check_stream(stats: &StreamStats, commit: &Commit) -> Result<(), String> {
    let (claimed, blake3) = (commit.stream_bytes, commit.blake3.as_str());
    let got = stats.hashed_bytes();
    if got < claimed {
        return Err(format!("stream ended after {got} of {claimed} bytes"));
    }
    if got > claimed {
        return Err(format!(
            "stream carried {got} bytes, but the sender says {claimed}"
        ));
    }
    if !stats.blake3.eq_ignore_ascii_case(blake3) {
        return Err(format!(
            "checksum mismatch: got {}, sender says {blake3}",
            stats.blake3
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(bytes: u64, blake3: &str) -> StreamStats {
        StreamStats {
            start: 0,
            end: bytes,
            wire_bytes: bytes,
            chunks: 1,
            zstd_chunks: 0,
            hashed_from: 0,
            blake3: blake3.to_owned(),
        }
    }

    fn commit(stream_bytes: u64, blake3: &str) -> Commit {
        Commit {
            stream_bytes,
            blake3: blake3.into(),
        }
    }

    #[test]
    fn commit_claims_are_checked_count_first() {
        assert_eq!(check_stream(&stats(10, "ab"), &commit(10, "AB")), Ok(()));
        let short = check_stream(&stats(10, "ab"), &commit(12, "ab")).unwrap_err();
        assert_eq!(short, "stream ended after 10 of 12 bytes");
        let long = check_stream(&stats(12, "ab"), &commit(10, "cd")).unwrap_err();
        assert!(long.contains("12 bytes, but the sender says 10"), "{long}");
        let sum = check_stream(&stats(10, "ab"), &commit(10, "cd")).unwrap_err();
        assert_eq!(sum, "checksum mismatch: got ab, sender says cd");
    }

    #[test]
    fn btrfs_failures_read_as_exit_codes() {
        let e = btrfs::Error::Failed {
            command: "btrfs receive -e /x".into(),
            status: "exit status: 1".into(),
            stderr: "ERROR: boom".into(),
        };
        assert_eq!(receive_failure(&e), "btrfs receive exited 1: ERROR: boom");
        let e = btrfs::Error::Failed {
            command: "btrfs receive -e /x".into(),
            status: "signal: 9 (SIGKILL)".into(),
            stderr: String::new(),
        };
        assert!(receive_failure(&e).starts_with("btrfs receive ended (signal: 9"));
    }

    #[test]
    fn lost_connections_name_the_byte_count() {
        assert_eq!(
            data_failure(&wire::Error::Closed, 7, "nas1"),
            "nas1 closed the data connection after 7 bytes without a verdict (it stopped, \
             crashed or gave up on this receiver)"
        );
        let bad = data_failure(
            &wire::Error::Malformed {
                what: "unknown frame tag 9".into(),
            },
            7,
            "nas1",
        );
        assert!(
            bad.starts_with("bad data stream from nas1 after 7 bytes"),
            "{bad}"
        );
    }
}
