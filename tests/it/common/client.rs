//! A minimal sender for receiver tests: mutual TLS to 127.0.0.1, hellos, Inventory,
//! Begin, a data connection carrying `btrfs send`, Commit. Scaffolding, not the sender.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ferry::btrfs::{self, Subvolume};
use ferry::identity::{self, Fingerprint, Identity};
use ferry::wire::{self, ChunkWriter, Hello, Meta, MetaConn, Parent, Replica, StreamStats};
use rustls::ClientConfig;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use uuid::Uuid;

pub type Tls = TlsStream<TcpStream>;

/// The sending appliance: its identity and what its hello says.
pub struct Peer {
    pub identity: Identity,
    pub uuid: Uuid,
    pub name: String,
}

impl Peer {
    pub fn load(state: &Path) -> Peer {
        let identity = identity::load(state).expect("load identity");
        let me = ferry::store::Store::open(state)
            .expect("open store")
            .identity()
            .expect("identity row")
            .expect("initialized");
        Peer {
            identity,
            uuid: me.uuid,
            name: me.name,
        }
    }

    pub fn hello(&self) -> Hello {
        Hello::new(self.uuid, self.name.clone())
    }
}

/// A TCP connection from an explicit 127.0.0.1 port, so a test knows the address
/// the receiver will log.
pub async fn tcp(to: SocketAddr) -> (TcpStream, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let local = socket.local_addr().expect("local addr");
    (socket.connect(to).await.expect("connect"), local)
}

pub async fn tls(config: Arc<ClientConfig>, to: SocketAddr) -> (std::io::Result<Tls>, SocketAddr) {
    let (tcp, local) = tcp(to).await;
    let tls = TlsConnector::from(config)
        .connect(identity::server_name(), tcp)
        .await;
    (tls, local)
}

pub struct Client {
    pub conn: MetaConn<Tls>,
    pub local: SocketAddr,
    pub server: Hello,
    config: Arc<ClientConfig>,
    data: SocketAddr,
}

impl Client {
    /// Connects and exchanges hellos; an Err is the handshake's (TLS or hello).
    pub async fn connect(
        me: &Peer,
        server: Fingerprint,
        meta: SocketAddr,
        data: SocketAddr,
    ) -> Result<Client, (SocketAddr, String)> {
        let config = identity::client_config(&me.identity, server).expect("client config");
        let (tls, local) = tls(config.clone(), meta).await;
        let tls = tls.map_err(|e| (local, e.to_string()))?;
        let mut conn = MetaConn::new(tls);
        let server = wire::handshake(&mut conn, me.hello())
            .await
            .map_err(|e| (local, e.to_string()))?;
        Ok(Client {
            conn,
            local,
            server,
            config,
            data,
        })
    }

    pub async fn request(&mut self, msg: Meta) -> Result<Meta, wire::Error> {
        self.conn.send(&msg).await?;
        self.conn.recv_alive().await
    }

    pub async fn inventory(
        &mut self,
        share: &str,
        pool: &str,
    ) -> Result<Vec<Replica>, wire::Error> {
        let msg = Meta::Inventory {
            share: share.into(),
            pool: pool.into(),
        };
        match self.request(msg).await? {
            Meta::InventoryReply { replicas } => Ok(replicas),
            other => Err(wire::Error::unexpected("inventory_reply", other)),
        }
    }

    /// Begin for `snap` of `share`; the session id from Ready.
    pub async fn begin(
        &mut self,
        share: &str,
        pool: &str,
        snap: &Subvolume,
        parent: Option<&Subvolume>,
        keep: u32,
    ) -> Result<Uuid, wire::Error> {
        let msg = Meta::Begin {
            share: share.into(),
            snapshot: snap.name.clone(),
            snapshot_uuid: snap.uuid,
            parent: parent.map(|p| Parent {
                name: p.name.clone(),
                uuid: p.uuid,
            }),
            pool: pool.into(),
            keep,
        };
        match self.request(msg).await? {
            Meta::Ready { session } => Ok(session),
            other => Err(wire::Error::unexpected("ready", other)),
        }
    }

    pub async fn open_data(&self, session: Uuid) -> ChunkWriter<Tls> {
        let (tls, _) = tls(self.config.clone(), self.data).await;
        ChunkWriter::open(tls.expect("data TLS"), session, 0, 3)
            .await
            .expect("data hello")
    }

    /// Commit; the received_uuid, or the receiver's reason as `Error::Peer`.
    pub async fn commit(&mut self, stream_bytes: u64, blake3: &str) -> Result<Uuid, wire::Error> {
        let msg = Meta::Commit {
            stream_bytes,
            blake3: blake3.into(),
        };
        match self.request(msg).await? {
            Meta::Received { received_uuid } => Ok(received_uuid),
            other => Err(wire::Error::unexpected("received", other)),
        }
    }

    /// A whole transfer, with `lie` free to change what Commit claims.
    pub async fn replicate_with(
        &mut self,
        share: &str,
        pool: &str,
        snap: &Subvolume,
        parent: Option<&Subvolume>,
        keep: u32,
        lie: impl FnOnce(&mut StreamStats),
    ) -> Result<Uuid, wire::Error> {
        let session = self.begin(share, pool, snap, parent, keep).await?;
        let writer = self.open_data(session).await;
        let mut stats = stream_snapshot(writer, &snap.path, parent.map(|p| p.path.as_path())).await;
        lie(&mut stats);
        self.commit(stats.end - stats.start, &stats.blake3).await
    }

    /// Replicates `snap` in full and checks that the receiver confirmed it
    /// with the snapshot's own uuid.
    pub async fn replicate_full(&mut self, snap: &Subvolume) {
        let got = self
            .replicate("photos", "backup", snap, None, 1)
            .await
            .expect("full replication");
        assert_eq!(got, snap.uuid);
    }

    pub async fn replicate(
        &mut self,
        share: &str,
        pool: &str,
        snap: &Subvolume,
        parent: Option<&Subvolume>,
        keep: u32,
    ) -> Result<Uuid, wire::Error> {
        self.replicate_with(share, pool, snap, parent, keep, |_| {})
            .await
    }
}

/// `btrfs send [-p parent] snap` through `w`, End included.
pub async fn stream_snapshot(
    mut w: ChunkWriter<Tls>,
    snap: &Path,
    parent: Option<&Path>,
) -> StreamStats {
    let send = btrfs::send(snap, parent).expect("btrfs send");
    let (pipe, exit) = send.into_blocking().expect("the send pipe");
    w.copy_from(pipe, |_| {})
        .await
        .expect("stream the snapshot");
    exit.finish().await.expect("btrfs send succeeded");
    w.finish().await.expect("finish the stream")
}
