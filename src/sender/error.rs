//! Why a run failed, in words for the history row, and the one place that
//! decides whether retrying soon may help (temporary) or not (permanent).

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::identity::ParseFingerprintError;
use crate::{btrfs, identity, state_lock, store, wire};

#[derive(Debug, Error)]
pub enum Error {
    #[error("no task named {0}")]
    NoTask(String),
    #[error("task {0} is already running; a run was refused so that two never overlap")]
    Busy(String),
    #[error("cannot take the lock of task {task}: {source}")]
    Lock {
        task: String,
        source: std::io::Error,
    },
    #[error("the state database has no identity row; `ferry init --repair` restores it from this appliance's certificate")]
    NoIdentity,
    #[error("appliance {0} is gone; point the task at another with a new task")]
    ApplianceGone(String),
    #[error("appliance {appliance} has a bad fingerprint: {source}")]
    BadFingerprint {
        appliance: String,
        source: ParseFingerprintError,
    },
    #[error("cannot reach {appliance} at {addr}: {source}")]
    Connect {
        appliance: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS with {appliance} at {addr} failed: {reason}")]
    Tls {
        appliance: String,
        addr: String,
        reason: String,
        temporary: bool,
    },
    #[error("{appliance} refused this appliance's certificate: run `ferry appliance add {me} --address <this host> --fingerprint {fingerprint}` on {appliance}")]
    NotTrusted {
        appliance: String,
        me: String,
        fingerprint: String,
    },
    /// A request to the receiver failed: refused, failed, or the session broke.
    #[error("{appliance}: {source}")]
    Wire {
        appliance: String,
        source: wire::Error,
    },
    /// The data connection broke and the receiver said nothing about why.
    #[error("connection to {appliance} lost after {bytes} bytes: {source}")]
    Stream {
        appliance: String,
        bytes: u64,
        source: wire::Error,
    },
    /// The receiver ended the transfer while it was streaming, and said why.
    #[error("{appliance} ended the transfer after {bytes} bytes: {source}")]
    Stopped {
        appliance: String,
        bytes: u64,
        source: wire::Error,
    },
    /// This side gave the receiver up: it answered nothing, not even pings.
    #[error(
        "this appliance gave up on {appliance} after {bytes} bytes: no word from {appliance} \
         for {after:?}, not even an answer to keepalive pings (hung, or the network drops packets)"
    )]
    Silent {
        appliance: String,
        bytes: u64,
        after: Duration,
    },
    #[error("{0}")]
    Btrfs(#[from] btrfs::Error),
    #[error("{0}")]
    Store(#[from] store::Error),
    #[error("{0}")]
    Identity(#[from] identity::Error),
    #[error("{appliance} confirmed received_uuid {got}, but the snapshot's uuid is {expected}")]
    WrongUuid {
        appliance: String,
        expected: uuid::Uuid,
        got: uuid::Uuid,
    },
    #[error("cannot create snapshot dir {}: {source}", path.display())]
    SnapshotDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {} already exists and is not one this task made", path.display())]
    SnapshotExists { path: PathBuf },
    #[error("snapshot {} is not read-only; refusing to send it", path.display())]
    NotReadOnly { path: PathBuf },
    #[error("snapshot {} carries received_uuid {received_uuid}, so btrfs send would announce it as that received subvolume; refused before sending. Its share carries the received_uuid: make a writable snapshot of the share and replicate that instead", path.display())]
    CarriesReceivedUuid {
        path: PathBuf,
        received_uuid: uuid::Uuid,
    },
    #[error("reading btrfs send: {0}")]
    ReadSend(std::io::Error),
    /// The regenerated stream does not begin with what the receiver holds.
    #[error("cannot resume on {appliance}: the regenerated send stream's first {offset} bytes differ from the receiver's copy (read {got}); starting over")]
    ResumeMismatch {
        appliance: String,
        offset: u64,
        got: u64,
    },
    /// The stream could not be encoded here (zstd, a chunk over the limit).
    #[error("encoding the stream: {0}")]
    Encode(wire::Error),
    /// A hook failed where that fails the run (pre-snapshot).
    #[error("{0}")]
    Hook(#[from] super::hooks::HookError),
    #[error("the run crashed: {0}")]
    Crashed(String),
    #[error("interrupted by shutdown")]
    Interrupted,
    /// Another scheduler uses the state directory (the daemon does not start).
    #[error(transparent)]
    Locked(#[from] state_lock::Error),
}

impl Error {
    /// The target's hint for when to try again (a busy refusal's `retry_after`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Wire { source, .. } | Error::Stopped { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// Whether the scheduler should retry soon: the network, busy peers and a
    /// busy database recover by themselves; a wrong configuration, a refusal
    /// that would repeat, or a lying peer does not.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Busy(_)
            | Error::Connect { .. }
            | Error::Stream { .. }
            | Error::Silent { .. }
            | Error::ResumeMismatch { .. }
            | Error::Interrupted => true,
            Error::Tls { temporary, .. } => *temporary,
            Error::Wire { source, .. } | Error::Stopped { source, .. } => source.is_temporary(),
            Error::Store(e) => e.is_busy(),
            Error::NoTask(_)
            | Error::Lock { .. }
            | Error::NoIdentity
            | Error::ApplianceGone(_)
            | Error::BadFingerprint { .. }
            | Error::NotTrusted { .. }
            | Error::Btrfs(_)
            | Error::Identity(_)
            | Error::WrongUuid { .. }
            | Error::SnapshotDir { .. }
            | Error::SnapshotExists { .. }
            | Error::NotReadOnly { .. }
            | Error::CarriesReceivedUuid { .. }
            | Error::ReadSend(_)
            | Error::Encode(_)
            | Error::Hook(_)
            | Error::Crashed(_)
            | Error::Locked(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io() -> io::Error {
        io::Error::other("x")
    }

    /// Pins: every class of sender error is decided here, once: temporary ones
    /// retry with backoff, permanent ones wait for the next regular run.
    #[test]
    fn each_class_is_decided_once() {
        let name = || "nas2".to_string();
        let wire = |e: wire::Error| Error::Wire {
            appliance: name(),
            source: e,
        };
        let failed = |permanent| wire::Error::Failed {
            reason: "r".into(),
            permanent,
        };
        let busy_db = store::Error::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        let cases: Vec<(Error, bool)> = vec![
            (Error::Busy("t".into()), true),
            (
                Error::Connect {
                    appliance: name(),
                    addr: "a".into(),
                    source: io(),
                },
                true,
            ),
            (
                Error::Stream {
                    appliance: name(),
                    bytes: 1,
                    source: wire::Error::Closed,
                },
                true,
            ),
            (
                Error::Silent {
                    appliance: name(),
                    bytes: 1,
                    after: Duration::from_secs(30),
                },
                true,
            ),
            (Error::Interrupted, true),
            (
                Error::Tls {
                    appliance: name(),
                    addr: "a".into(),
                    reason: "r".into(),
                    temporary: true,
                },
                true,
            ),
            (
                Error::Tls {
                    appliance: name(),
                    addr: "a".into(),
                    reason: "r".into(),
                    temporary: false,
                },
                false,
            ),
            // A receiver's verdict has one class whenever it arrives.
            (wire(failed(false)), true),
            (wire(failed(true)), false),
            (
                Error::Stopped {
                    appliance: name(),
                    bytes: 1,
                    source: failed(false),
                },
                true,
            ),
            (
                Error::Stopped {
                    appliance: name(),
                    bytes: 1,
                    source: failed(true),
                },
                false,
            ),
            (
                wire(wire::Error::Refused {
                    reason: "r".into(),
                    busy: true,
                    retry_after: None,
                }),
                true,
            ),
            (
                wire(wire::Error::Refused {
                    reason: "r".into(),
                    busy: false,
                    retry_after: None,
                }),
                false,
            ),
            (wire(wire::Error::Aborted { reason: "r".into() }), true),
            (wire(wire::Error::Peer { reason: "r".into() }), false),
            (Error::Store(busy_db), true),
            (
                Error::Store(store::Error::NotInitialized("/x".into())),
                false,
            ),
            (Error::NoTask("t".into()), false),
            (
                Error::Lock {
                    task: "t".into(),
                    source: io(),
                },
                false,
            ),
            (Error::NoIdentity, false),
            (Error::ApplianceGone(name()), false),
            (
                Error::NotTrusted {
                    appliance: name(),
                    me: "m".into(),
                    fingerprint: "f".into(),
                },
                false,
            ),
            (
                Error::WrongUuid {
                    appliance: name(),
                    expected: uuid::Uuid::nil(),
                    got: uuid::Uuid::max(),
                },
                false,
            ),
            (
                Error::SnapshotDir {
                    path: "/s".into(),
                    source: io(),
                },
                false,
            ),
            (Error::SnapshotExists { path: "/s".into() }, false),
            (Error::NotReadOnly { path: "/s".into() }, false),
            (
                Error::CarriesReceivedUuid {
                    path: "/s".into(),
                    received_uuid: uuid::Uuid::nil(),
                },
                false,
            ),
            (Error::ReadSend(io()), false),
            (Error::Encode(wire::Error::Zstd(io())), false),
            (Error::Crashed("panic".into()), false),
        ];
        for (e, temporary) in cases {
            assert_eq!(e.is_temporary(), temporary, "{e:?}");
        }
    }
}
