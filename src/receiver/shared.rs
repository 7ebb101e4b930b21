//! What every session of one receiver shares: the store, this appliance's identity,
//! per-share locks, the receive slots, sessions waiting for their data connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::config::Config;
use super::error::{Error, RouteError};
pub(super) use super::share_locks::ShareLock;
use super::share_locks::ShareLocks;
use super::stats::Stats;
use crate::btrfs::Receive;
use crate::identity::{self, Fingerprint, Identity, TrustedPeers};
use crate::store::{self, LocalIdentity, Pool, Store};
use crate::wire::{Begin, ChunkReader, Feature, Features, Prefix};

/// How often a running receive checks that its pool is still registered.
const POOL_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// What the receiver already holds of the stream (empty for a fresh one):
    /// the data connection must start at its offset, and is hashed on from it.
    pub prefix: Prefix,
    pub tx: oneshot::Sender<Result<DataConn, RouteError>>,
}

/// A receive whose connection broke mid-stream, kept for a resume: its btrfs
/// receive still runs with its input open, its partial subvolume stays (as
/// invisible as every partial), and it still holds its share's lock.
pub(super) struct Parked {
    /// The sending appliance's uuid.
    pub source: Uuid,
    pub begin: Begin,
    pub dir: PathBuf,
    pub receive: Receive,
    /// The bytes btrfs receive has taken: where a resume continues.
    pub prefix: Prefix,
    /// Its history row, `running` with `parked_until` set.
    pub row: i64,
    /// When it is discarded unless resumed.
    pub until: tokio::time::Instant,
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
    locks: ShareLocks,
    slots: Arc<Semaphore>,
    pending: Mutex<HashMap<Uuid, Pending>>,
    /// Parked receives by (source, share); each key is also in `locks`.
    parked: Mutex<HashMap<(Uuid, String), Parked>>,
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

/// What this receiver offers: its configured features (by default the
/// appliance's), less `resume` when its window is zero (nothing would be
/// kept to resume).
fn offered(config: &Config) -> Features {
    let all = config.features.clone();
    if config.resume_window.is_zero() {
        Features::new(all.iter().filter(|f| *f != Feature::Resume))
    } else {
        all
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
        let features = offered(&config);
        Ok(Shared {
            peers: Arc::new(StorePeers {
                store: store.clone(),
            }),
            config,
            store,
            me,
            features,
            identity,
            locks: ShareLocks::default(),
            slots,
            pending: Mutex::default(),
            parked: Mutex::default(),
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
        self.locks.try_lock(source, share)
    }

    /// Takes the lock of (source, share) for a receive, waiting up to `within`
    /// while its holder only settles (see [`ShareLocks`]); `None` while another
    /// receive holds it.
    pub(super) async fn lock_share_for_receive(
        &self,
        source: Uuid,
        share: &str,
        within: Duration,
    ) -> Option<ShareLock<'_>> {
        self.locks.lock_after_settling(source, share, within).await
    }

    /// Marks the share's lock as settling: the receive answered its sender and
    /// only retention is left, so the sender's next run waits for it.
    pub(super) fn settling(&self, source: Uuid, share: &str) {
        self.locks.settling(source, share);
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

    /// Keeps `parked` for a resume. Its share stays locked: `lock` is kept
    /// held, not released, until the parked receive is taken or discarded.
    pub(super) fn park(&self, held: ShareLock<'_>, parked: Parked) {
        if let Some(key) = held.keep() {
            lock(&self.parked).insert(key, parked);
        }
    }

    /// Takes the parked receive of (source, share), if any, with its share's
    /// lock: the caller now holds both.
    pub(super) fn unpark(&self, source: Uuid, share: &str) -> Option<(Parked, ShareLock<'_>)> {
        let key = (source, share.to_owned());
        let parked = lock(&self.parked).remove(&key)?;
        Some((parked, self.locks.resume(key)))
    }

    /// The parked receive of (source, share), as Inventory reports it.
    pub(super) fn parked_info(&self, source: Uuid, share: &str) -> Option<crate::wire::Parked> {
        let key = (source, share.to_owned());
        lock(&self.parked).get(&key).map(|p| crate::wire::Parked {
            snapshot: p.begin.snapshot.clone(),
            snapshot_uuid: p.begin.snapshot_uuid,
            parent: p.begin.parent.clone(),
            offset: p.prefix.offset(),
        })
    }

    /// The keys of parked receives whose window ended by `now` (all, with `None`).
    pub(super) fn parked_keys(&self, now: Option<tokio::time::Instant>) -> Vec<(Uuid, String)> {
        lock(&self.parked)
            .iter()
            .filter(|(_, p)| now.is_none_or(|now| p.until <= now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The keys of parked receives into pools that are no longer registered
    /// (`ferry pool remove --force`). A database that cannot answer names none.
    pub(super) fn parked_in_removed_pools(&self) -> Vec<(Uuid, String)> {
        let pools: Vec<String> = lock(&self.parked)
            .values()
            .map(|p| p.begin.pool.clone())
            .collect();
        let gone: Vec<String> = pools
            .into_iter()
            .filter(|name| matches!(self.db(|s| s.pool(name)), Ok(None)))
            .collect();
        lock(&self.parked)
            .iter()
            .filter(|(_, p)| gone.contains(&p.begin.pool))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Resolves once `pool` is no longer registered at its path (`ferry pool
    /// remove --force` during a receive). A database that cannot answer right
    /// now is not a removal.
    pub(super) async fn pool_removed(&self, pool: &Pool) {
        loop {
            tokio::time::sleep(POOL_CHECK_EVERY).await;
            if let Ok(false) = self.db(|s| s.pool_registered(&pool.name, &pool.path)) {
                return;
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
