//! How a transfer ends: the verified result, or a failure with its reason and
//! whom to tell, and what the session does next.

use uuid::Uuid;

use crate::store::Pool;
use crate::wire::{self, Meta, Prefix, StreamStats};

/// What the session does after a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Serve the next request. `stray_commit`: the transfer failed before the
    /// sender's Commit and was answered `failed`; the Commit still on its way
    /// belongs to it and is swallowed.
    Continue {
        stray_commit: bool,
    },
    Close,
}

impl Next {
    pub const CONTINUE: Next = Next::Continue {
        stray_commit: false,
    };
}

/// What passed every check.
#[derive(Debug)]
pub(super) struct Verified {
    pub received_uuid: Uuid,
    pub stats: StreamStats,
    /// The replica's ctransid once committed (see `replica_layout::replica_state`).
    pub ctransid: Option<u64>,
}

/// What a transfer got to before it ended; the failure path needs it to clean
/// up and reply.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The sender's Commit arrived, so no stray Commit is still on its way.
    pub commit: bool,
    /// The subvolume btrfs receive reported creating, once it exited 0.
    pub received: Option<String>,
    /// Set when the stream broke in a way a new connection could repair, to
    /// what btrfs receive took: the receive may be parked for a resume.
    pub resumable: Option<Prefix>,
    /// The pool being received into: its removal (`ferry pool remove
    /// --force`) ends the transfer.
    pub pool: Option<Pool>,
}

/// Why a receive failed, whom to tell, and whether sending it again could help.
#[derive(Debug)]
pub(super) struct Failure {
    pub reason: String,
    pub tell: Tell,
    /// Sending the same stream again would fail the same way (it carries
    /// another subvolume than announced, say); told to the sender in `failed`.
    pub permanent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tell {
    /// Reply `failed`; the session goes on. Sent as soon as the failure is known,
    /// even before the sender's Commit: the sender reads it as the verdict on the
    /// Commit it sends next, and that Commit is then swallowed.
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
    /// A temporary failure, answered `failed`.
    pub fn failed(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            tell: Tell::Failed,
            permanent: false,
        }
    }

    /// A failure that the same stream would meet again, answered `failed`.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Failure {
            permanent: true,
            ..Failure::failed(reason)
        }
    }

    /// `pool` was removed from this receiver `me` during the receive; the same
    /// stream would be refused now.
    pub fn pool_removed(pool: &str, me: &str) -> Self {
        Failure::permanent(format!(
            "pool {pool} was removed from {me} during the receive (`ferry pool remove --force`)"
        ))
    }

    pub fn shutdown() -> Self {
        Failure {
            reason: "interrupted by shutdown".into(),
            tell: Tell::Abort,
            permanent: false,
        }
    }

    /// A meta message (or its absence) from the sender `peer` that ends a
    /// transfer before its verdict; `bytes` of the stream had arrived. The
    /// reason says which side gave up, and why.
    pub fn from_meta(m: Result<Meta, wire::Error>, bytes: u64, peer: &str) -> Self {
        let (reason, tell) = match m {
            Ok(Meta::Abort(r)) => (
                format!(
                    "{peer} aborted the transfer after {bytes} bytes: {}",
                    r.reason
                ),
                Tell::PeerAborted,
            ),
            Ok(other) => (
                format!(
                    "protocol violation: {} in the middle of a transfer",
                    other.kind()
                ),
                Tell::Error,
            ),
            Err(wire::Error::Timeout { after }) => (
                format!(
                    "this receiver gave up on {peer} after {bytes} bytes: no word from it for \
                     {after:?}, not even an answer to keepalive pings"
                ),
                Tell::Lost,
            ),
            Err(e) => (
                format!(
                    "{peer} closed the connection after {bytes} bytes without a verdict (it \
                     stopped, crashed or gave up on this receiver): {e}"
                ),
                Tell::Lost,
            ),
        };
        Failure {
            reason,
            tell,
            permanent: false,
        }
    }
}
