//! The receiver daemon: TLS listeners on the meta and data ports, one session per
//! peer connection, verified `btrfs receive` into `<pool>/.ferry/<source uuid>/<share>/`.

mod admit;
mod disk;
mod listen;
mod pool;
mod session;
mod shared;
mod stream;
mod transfer;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use uuid::Uuid;

use crate::{btrfs, identity, store};

pub use listen::serve_data;
pub use session::serve_meta;
pub use shared::Shared;

/// Where replicas of `share` from the appliance `source_uuid` live in a pool.
pub fn replica_dir(pool_path: &Path, source_uuid: Uuid, share: &str) -> PathBuf {
    pool_path
        .join(disk::FERRY_DIR)
        .join(source_uuid.hyphenated().to_string())
        .join(share)
}

/// How the daemon listens and how long it waits for peers.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub listen: IpAddr,
    /// 0 picks a free port ([`Receiver::meta_addr`] tells which).
    pub meta_port: u16,
    /// 0 picks a free port ([`Receiver::data_addr`] tells which).
    pub data_port: u16,
    /// Receives running at once, over all peers; more are refused as busy.
    pub max_receives: usize,
    /// TLS handshake, hellos, and the data connection's first frame.
    pub handshake_timeout: Duration,
    /// TLS handshakes in progress at once, over both ports. Each costs a task and
    /// up to `handshake_timeout` before the peer has proven anything, so a flood
    /// of unauthenticated connections is cut off here; those over are dropped.
    pub max_handshakes: usize,
    /// Wait for the data connection after Ready, and the longest stall while reading it.
    pub data_timeout: Duration,
    /// How long btrfs receive may take to exit once its stream has ended; then it
    /// is killed and the receive fails. It flushes what it buffered, which on a
    /// slow or busy disk takes a while, but a hung one must not hold the share's
    /// lock (and a receive slot) forever.
    pub finish_timeout: Duration,
    /// The bound on each other btrfs command of a receive (show, delete): they
    /// take seconds at worst, unless the filesystem is wedged.
    pub btrfs_timeout: Duration,
}

impl Config {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Config {
            state_dir: state_dir.into(),
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            meta_port: 10003,
            data_port: 10002,
            max_receives: 4,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 64,
            data_timeout: Duration::from_secs(30),
            finish_timeout: Duration::from_secs(10 * 60),
            btrfs_timeout: Duration::from_secs(2 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Identity(#[from] identity::Error),
    #[error("the state database has no identity row; run `ferry init` first")]
    NoIdentity,
    #[error("cannot listen for the {port} port on {addr}: {source}")]
    Bind {
        port: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("startup recovery: {0}")]
    Recovery(#[from] btrfs::Error),
}

/// A bound receiver, ready to [`serve`](Receiver::serve).
pub struct Receiver {
    shared: Arc<Shared>,
    meta: TcpListener,
    data: TcpListener,
}

impl Receiver {
    /// Opens the store, recovers from a previous crash, and binds both ports.
    pub async fn bind(config: Config) -> Result<Receiver, Error> {
        let shared = Arc::new(Shared::open(config.clone())?);
        disk::recover(&shared).await?;
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
        Ok(Receiver { shared, meta, data })
    }

    pub fn meta_addr(&self) -> SocketAddr {
        local_addr(&self.meta)
    }

    pub fn data_addr(&self) -> SocketAddr {
        local_addr(&self.data)
    }

    /// The state sessions share; tests drive [`serve_meta`] with it over pipes.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` resolves, then aborts running sessions (their rows
    /// end failed, their partials are deleted) and returns within a few seconds.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        listen::serve(self.shared, self.meta, self.data, shutdown).await;
        Ok(())
    }
}

fn local_addr(l: &TcpListener) -> SocketAddr {
    // A bound listener always has a local address; the fallback is unreachable.
    l.local_addr()
        .unwrap_or_else(|_| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
}

/// [`Receiver::bind`] then [`Receiver::serve`].
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
    Receiver::bind(config).await?.serve(shutdown).await
}
