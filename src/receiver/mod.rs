//! The receiver daemon: TLS listeners on the meta and data ports, one session per
//! peer connection, verified `btrfs receive` into `<pool>/.ferry/<source uuid>/<share>/`.
//!
//! Layers, each using only those below it: `listen` (accept loops) → `session`
//! (hellos, dispatch) → `inventory`, `transfer` and `prune` (the requests) → `admit`,
//! `prepare`, `stream`, `retention` → `row`, `reply`, `outcome`, `link`, `pool`
//! → `shared`, `config`, `error`; the directories on disk are `crate::replica_layout`.
//! `recovery` is the startup sweep.

mod admit;
pub mod adopt;
pub mod audit;
mod chores;
mod config;
mod error;
mod failback;
mod inventory;
mod link;
mod listen;
mod outcome;
mod park;
mod pool;
mod prepare;
mod prune;
mod pump;
mod read_threshold;
mod recovery;
mod reply;
mod retention;
mod row;
mod session;
mod share_locks;
mod shared;
mod stats;
mod stream;
mod transfer;
mod view;
mod watch;
mod writeback;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use crate::replica_layout::{replica_dir, replica_state, ReplicaState, FERRY_DIR, LATEST};
pub use config::Config;
pub use error::Error;
pub use listen::serve_data;
pub use session::serve_meta;
pub use shared::Shared;
pub use stats::{Refusal, Stats};
pub use view::{refresh, RefreshError};

use crate::state_lock::{self, StateLock};

/// A bound receiver, ready to [`serve`](Receiver::serve).
pub struct Receiver {
    shared: Arc<Shared>,
    meta: TcpListener,
    data: TcpListener,
    /// Held from before startup recovery until `serve` returns: a second
    /// receiver on this state dir would fail this one's rows and delete its
    /// partials at its start.
    _lock: StateLock,
}

impl Receiver {
    /// Opens the store, recovers from a previous crash, and binds both ports.
    ///
    /// # Errors
    ///
    /// [`Error::Store`], [`Error::Identity`] or [`Error::NoIdentity`] for a state dir that
    /// is not usable, [`Error::Recovery`] when the startup sweep cannot read a pool,
    /// [`Error::Bind`] for a port in use.
    pub async fn bind(config: Config) -> Result<Receiver, Error> {
        let shared = Arc::new(Shared::open(config.clone())?);
        let lock = StateLock::acquire(&config.state_dir, state_lock::Daemon::Receiver)?;
        recovery::recover(&shared).await?;
        let bind = |port: &'static str, n: u16| {
            let addr = SocketAddr::new(config.listen, n);
            async move {
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind { port, addr, source })
            }
        };
        let meta = bind("meta", config.meta_port).await?;
        let data = bind("data", config.data_port).await?;
        Ok(Receiver {
            shared,
            meta,
            data,
            _lock: lock,
        })
    }

    pub fn meta_addr(&self) -> SocketAddr {
        listen::local_addr(&self.meta)
    }

    pub fn data_addr(&self) -> SocketAddr {
        listen::local_addr(&self.data)
    }

    /// The state sessions share; tests drive [`serve_meta`] with it over pipes.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` resolves, then aborts running sessions (their rows
    /// end failed, their partials are deleted) and returns within a few seconds.
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps room for a fatal listener error.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let housekeeping = chores::start(&self.shared).await;
        listen::serve(self.shared, self.meta, self.data, shutdown).await;
        if let Some(h) = housekeeping {
            h.stop().await;
        }
        drop(self._lock);
        Ok(())
    }
}

/// [`Receiver::bind`] then [`Receiver::serve`].
///
/// # Errors
///
/// Those of [`Receiver::bind`].
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
    Receiver::bind(config).await?.serve(shutdown).await
}
