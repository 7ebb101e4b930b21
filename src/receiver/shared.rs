//! What every session of one receiver shares: the store, this appliance's identity,
//! per-share locks, the receive slots, sessions waiting for their data connection.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::config::Config;
use super::error::{Error, RouteError};
use super::stats::Stats;
use crate::capabilities;
use crate::identity::{self, Fingerprint, Identity, TrustedPeers};
use crate::store::{self, LocalIdentity, Store};
use crate::wire::{ChunkReader, Features};

/// A data connection's byte source, boxed so sessions need not know TLS.
pub type DataStream = Box<dyn AsyncRead + Unpin + Send>;

/// A data connection handed to the session that announced its id in `Ready`.
pub struct DataConn {
    pub reader: ChunkReader<DataStream>,
    pub addr: SocketAddr,
}

/// A session waiting for its data connection. `Err` carries why the connection
/// that named it was unusable, so the session fails with that reason.
pub(super) struct Pending {
    /// The fingerprint of the session's peer, as the appliances table spells it.
    pub peer: String,
    pub tx: oneshot::Sender<Result<DataConn, RouteError>>,
}

/// State shared by all sessions of one receiver.
pub struct Shared {
    pub(super) config: Config,
    store: Arc<Mutex<Store>>,
    pub(super) me: LocalIdentity,
    /// What this receiver offers in its hello.
    pub(super) features: Features,
    pub(super) identity: Identity,
    pub(super) peers: Arc<StorePeers>,
    locks: Mutex<HashSet<(Uuid, String)>>,
    slots: Arc<Semaphore>,
    pending: Mutex<HashMap<Uuid, Pending>>,
    shutdown: watch::Sender<bool>,
    stats: Stats,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("me", &self.me.name)
            .finish_non_exhaustive()
    }
}

/// A mutex poisoned by a panicking session still guards consistent data: every
/// critical section here is a single insert, remove or store call.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(super) fn open(config: Config) -> Result<Shared, Error> {
        let store = Store::open(&config.state_dir)?;
        let me = store.identity()?.ok_or(Error::NoIdentity)?;
        let identity = identity::load(&config.state_dir)?;
        let store = Arc::new(Mutex::new(store));
        let slots = Arc::new(Semaphore::new(config.max_receives));
        Ok(Shared {
            peers: Arc::new(StorePeers {
                store: store.clone(),
            }),
            config,
            store,
            me,
            features: capabilities::offered(),
            identity,
            locks: Mutex::default(),
            slots,
            pending: Mutex::default(),
            shutdown: watch::Sender::new(false),
            stats: Stats::default(),
        })
    }

    /// Runs `f` on the store. Calls are short single statements, so a blocking
    /// mutex is cheaper than shipping each to a blocking thread.
    pub(super) fn db<T>(&self, f: impl FnOnce(&mut Store) -> store::Result<T>) -> store::Result<T> {
        f(&mut lock(&self.store))
    }

    /// Takes the one-receive-at-a-time lock of (source, share), or `None` if held.
    pub(super) fn lock_share(&self, source: Uuid, share: &str) -> Option<ShareLock<'_>> {
        let key = (source, share.to_owned());
        // A separate statement: the guard must be gone before a ShareLock can
        // exist, since dropping one takes the same mutex.
        let inserted = lock(&self.locks).insert(key.clone());
        inserted.then(|| ShareLock { shared: self, key })
    }

    /// One of the `max_receives` slots, waiting up to `within` for one to free
    /// (first come, first served); `None` when none did.
    pub(super) async fn receive_slot(&self, within: Duration) -> Option<OwnedSemaphorePermit> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        tokio::time::timeout(within, self.slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// What this receiver counted since it started (refusals, peers seen).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Receives running now: the receive slots taken.
    pub fn receives_running(&self) -> usize {
        self.config
            .max_receives
            .saturating_sub(self.slots.available_permits())
    }

    pub(super) fn expect_data(&self, session: Uuid, pending: Pending) {
        lock(&self.pending).insert(session, pending);
    }

    pub(super) fn forget_data(&self, session: Uuid) {
        lock(&self.pending).remove(&session);
    }

    /// Removes and returns the waiting session `session` if `take` accepts it;
    /// otherwise leaves it waiting and returns why not.
    pub(super) fn take_pending(
        &self,
        session: Uuid,
        take: impl FnOnce(&Pending) -> Result<(), RouteError>,
    ) -> Result<Pending, RouteError> {
        let mut pending = lock(&self.pending);
        match pending.get(&session) {
            None => Err(RouteError::NoSession(session)),
            Some(p) => {
                take(p)?;
                pending
                    .remove(&session)
                    .ok_or(RouteError::NoSession(session))
            }
        }
    }

    pub(super) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once the receiver is shutting down (never, for a receiver that is
    /// only driven through [`super::serve_meta`]).
    pub(super) async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        // Err means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|down| *down).await;
    }
}

/// The lock of one (source, share). Owned by the session, so a session that dies
/// (dropped connection, keepalive timeout, panic) releases it when it unwinds:
/// that is how a stale lock expires, with no timer.
pub(super) struct ShareLock<'a> {
    shared: &'a Shared,
    key: (Uuid, String),
}

impl Drop for ShareLock<'_> {
    fn drop(&mut self) {
        lock(&self.shared.locks).remove(&self.key);
    }
}

/// Trusts the fingerprints in the appliances table, read at every handshake so
/// `ferry appliance add` and `remove` take effect without a restart.
#[derive(Debug)]
pub(super) struct StorePeers {
    store: Arc<Mutex<Store>>,
}

impl StorePeers {
    /// The appliance presenting `fp`; `None` when unknown or the store fails.
    pub(super) fn appliance(&self, fp: &Fingerprint) -> Option<store::Appliance> {
        match lock(&self.store).appliance_by_fingerprint(&fp.to_string()) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(fingerprint = %fp, error = %e, "cannot look up a peer; refusing it");
                None
            }
        }
    }
}

impl TrustedPeers for StorePeers {
    fn is_trusted(&self, fp: &Fingerprint) -> bool {
        self.appliance(fp).is_some()
    }
}
