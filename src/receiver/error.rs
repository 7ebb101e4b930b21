//! The receiver's errors: what stops the daemon from starting, and the typed
//! reasons inside a session that end up as a refusal or a failed verdict.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

use crate::{btrfs, identity, state_lock, store};

/// Why the receiver cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Identity(#[from] identity::Error),
    #[error("the state database has no identity row; `ferry init --repair` restores it from this appliance's certificate")]
    NoIdentity,
    #[error("cannot listen for the {port} port on {addr}: {source}")]
    Bind {
        port: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("startup recovery: {0}")]
    Recovery(#[from] btrfs::Error),
    /// Another receiver uses the state directory.
    #[error(transparent)]
    Locked(#[from] state_lock::Error),
}

/// Why a registered pool cannot take or offer replicas right now. Temporary:
/// a pool that is not mounted now may be soon.
#[derive(Debug, thiserror::Error)]
#[error("pool {pool} at {} on {me} {problem}; try again later", path.display())]
pub struct PoolUnavailable {
    pub pool: String,
    pub path: PathBuf,
    /// This receiver's appliance name.
    pub me: String,
    pub problem: PoolProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolProblem {
    #[error("is not a mounted btrfs subvolume (is the pool unmounted?)")]
    NotMounted,
    #[error("is not on btrfs")]
    NotBtrfs,
    #[error("cannot be checked ({0})")]
    Unreadable(btrfs::Error),
    #[error(
        "is on btrfs filesystem {found}, but the pool was added on {added} \
         (another filesystem mounted there?)"
    )]
    OtherFilesystem { found: Uuid, added: Uuid },
}

/// Why a peer's claimed identity is not accepted for a session.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("appliance {name} says its uuid is {claimed}, but its certificate names {cert}")]
    NotItsCertificate {
        name: String,
        claimed: Uuid,
        cert: Uuid,
    },
    #[error(
        "appliance {name} says its uuid is {claimed}, but this receiver knows it as {known}; \
         if it was re-initialized, remove and re-add it here (`ferry appliance remove {name}`)"
    )]
    Rebound {
        name: String,
        claimed: Uuid,
        known: Uuid,
    },
    #[error("cannot record uuid {uuid} for appliance {name} (is it already another appliance's?): {source}")]
    Record {
        name: String,
        uuid: Uuid,
        source: Box<store::Error>,
    },
}

/// Why a replica directory could not be made ready for a receive.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot create the replica directory in pool {pool}: {source}")]
    CreateDir {
        pool: String,
        source: std::io::Error,
    },
    #[error("receiver state database: {0}")]
    Store(#[from] store::Error),
    #[error("cannot clear a partial receive in {}: {source}", dir.display())]
    Clear { dir: PathBuf, source: btrfs::Error },
    #[error("cannot clear a partial receive in {}: timed out after {after:?}", dir.display())]
    ClearTimedOut { dir: PathBuf, after: Duration },
    #[error(
        "{} already exists but is not a replica this receiver recorded (a pool re-added \
         under another name, or a lost state database?); it is left alone: delete it by \
         hand, or send a snapshot with another name", path.display()
    )]
    Occupied { path: PathBuf },
    #[error("cannot make failback base {base} a parent: {reason}")]
    Base { base: String, reason: String },
}

/// Why a data connection was not handed to a session.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    #[error("no session {0} is waiting for data")]
    NoSession(Uuid),
    #[error("session {session} belongs to another appliance, not {fingerprint}")]
    OtherPeer { session: Uuid, fingerprint: String },
    #[error(
        "the data connection starts at offset {offset}, but the receive holds {expected} bytes \
         of the stream"
    )]
    Offset { offset: u64, expected: u64 },
    #[error("cannot read the data connection: {0}")]
    Reader(String),
}
