//! Why a run failed, in words for the history row, and whether retrying may help.

use thiserror::Error;

use crate::{btrfs, identity, store, wire};

#[derive(Debug, Error)]
pub enum Error {
    #[error("no task named {0}")]
    NoTask(String),
    #[error("task {0} is already running; a run was refused so that two never overlap")]
    Busy(String),
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
    #[error("{appliance}: {source}")]
    Wire {
        appliance: String,
        source: wire::Error,
    },
    #[error("connection lost after {bytes} bytes: {source}")]
    Stream { bytes: u64, source: wire::Error },
    #[error("{appliance} aborted the transfer after {bytes} bytes: {reason}")]
    Aborted {
        appliance: String,
        bytes: u64,
        reason: String,
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
    #[error("{0}")]
    Local(String),
    #[error("interrupted by shutdown")]
    Interrupted,
}

impl Error {
    /// Whether the scheduler should retry soon: the network and busy peers
    /// recover by themselves; a wrong configuration or a lying peer does not.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Busy(_) | Error::Connect { .. } | Error::Stream { .. } => true,
            Error::Aborted { .. } | Error::Interrupted => true,
            Error::Tls { temporary, .. } => *temporary,
            Error::Wire { source, .. } => source.is_temporary(),
            Error::NoTask(_)
            | Error::NotTrusted { .. }
            | Error::Btrfs(_)
            | Error::Store(_)
            | Error::Identity(_)
            | Error::WrongUuid { .. }
            | Error::Local(_) => false,
        }
    }
}
