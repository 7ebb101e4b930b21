//! A minimal sender for receiver tests: mutual TLS to 127.0.0.1, then the sender's
//! own typed `wire::Client` for Inventory, Begin and Commit, and a data connection
//! carrying `btrfs send`. Scaffolding, not the sender.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ferry::btrfs::{self, Subvolume};
use ferry::identity::{self, Fingerprint, Identity};
use ferry::wire::{
    self, Begin, ChunkWriter, Commit, Features, Hello, Inventory, Keepalive, Meta, MetaConn,
    Parent, Prefix, Replica, StreamStats,
};
use rustls::ClientConfig;
use tokio::io::AsyncReadExt;
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

    /// This build's hello, offering what this machine supports.
    pub fn hello(&self) -> Hello {
        Hello::new(
            self.uuid,
            self.name.clone(),
            &ferry::capabilities::offered(),
        )
    }

    /// A hello offering exactly `features`.
    pub fn hello_offering(&self, features: &Features) -> Hello {
        Hello::new(self.uuid, self.name.clone(), features)
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
    /// The typed client every request goes through, as the sender's does.
    pub wire: wire::Client<Tls>,
    pub local: SocketAddr,
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
        Self::connect_with(me, server, meta, data, Keepalive::DEFAULT).await
    }

    /// [`connect`](Self::connect) with this side's keepalive timings.
    pub async fn connect_with(
        me: &Peer,
        server: Fingerprint,
        meta: SocketAddr,
        data: SocketAddr,
        keepalive: Keepalive,
    ) -> Result<Client, (SocketAddr, String)> {
        let config = identity::client_config(&me.identity, server).expect("client config");
        let (tls, local) = tls(config.clone(), meta).await;
        let tls = tls.map_err(|e| (local, e.to_string()))?;
        let conn = MetaConn::with_keepalive(tls, keepalive);
        let wire = wire::Client::handshake(conn, me.hello())
            .await
            .map_err(|e| (local, e.to_string()))?;
        Ok(Client {
            wire,
            local,
            config,
            data,
        })
    }

    /// The receiver's hello.
    pub fn server(&self) -> &Hello {
        self.wire.peer()
    }

    /// The raw connection, for tests that say what no sender would.
    pub fn conn(&mut self) -> &mut MetaConn<Tls> {
        self.wire.conn()
    }

    /// Sends `msg` as is and returns the next message that is not a keepalive.
    pub async fn request(&mut self, msg: Meta) -> Result<Meta, wire::Error> {
        self.conn().send(&msg).await?;
        self.conn().recv_alive().await
    }

    pub async fn inventory(
        &mut self,
        share: &str,
        pool: &str,
    ) -> Result<Vec<Replica>, wire::Error> {
        let req = Inventory {
            share: share.into(),
            pool: pool.into(),
            ..Default::default()
        };
        Ok(self.wire.inventory(req).await?.replicas)
    }

    /// The whole Inventory reply, withheld replicas included.
    pub async fn inventory_reply(
        &mut self,
        share: &str,
        pool: &str,
    ) -> Result<wire::InventoryReply, wire::Error> {
        let req = Inventory {
            share: share.into(),
            pool: pool.into(),
            ..Default::default()
        };
        self.wire.inventory(req).await
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
        let ready = self
            .wire
            .begin(begin(share, pool, snap, parent, keep))
            .await?;
        Ok(ready.session)
    }

    /// A data connection continuing a parked receive after `prefix`.
    pub async fn open_data_at(&self, session: Uuid, prefix: Prefix) -> ChunkWriter<Tls> {
        let (tls, _) = tls(self.config.clone(), self.data).await;
        ChunkWriter::resume(tls.expect("data TLS"), session, prefix, 3)
            .await
            .expect("data hello")
    }

    /// Begins a full receive of `snap` into pool `backup` and sends all of its
    /// stream but the last 40 bytes: btrfs receive has made the subvolume and
    /// waits for more. Returns the data connection and the rest of the stream.
    pub async fn all_but_the_end(&mut self, snap: &Subvolume) -> (ChunkWriter<Tls>, Vec<u8>) {
        let session = self
            .begin("photos", "backup", snap, None, 1)
            .await
            .expect("ready");
        let mut stream = Vec::new();
        btrfs::send(&snap.path, None)
            .expect("send")
            .read_to_end(&mut stream)
            .await
            .expect("read the stream");
        let mut w = self.open_data(session).await;
        let tail = stream.split_off(stream.len() - 40);
        w.write_chunk(&stream).await.expect("chunk");
        (w, tail)
    }

    pub async fn open_data(&self, session: Uuid) -> ChunkWriter<Tls> {
        let (tls, _) = tls(self.config.clone(), self.data).await;
        ChunkWriter::open(tls.expect("data TLS"), session, 0, 3)
            .await
            .expect("data hello")
    }

    /// Commit; the received_uuid, or the receiver's verdict as `Error::Failed`.
    pub async fn commit(&mut self, stream_bytes: u64, blake3: &str) -> Result<Uuid, wire::Error> {
        let req = Commit {
            stream_bytes,
            blake3: blake3.into(),
        };
        Ok(self.wire.commit(req).await?.received_uuid)
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

/// The Begin a sender sends for `snap` (from `parent`, when incremental).
pub fn begin(
    share: &str,
    pool: &str,
    snap: &Subvolume,
    parent: Option<&Subvolume>,
    keep: u32,
) -> Begin {
    Begin {
        share: share.into(),
        snapshot: snap.name.clone(),
        snapshot_uuid: snap.uuid,
        parent: parent.map(|p| Parent {
            name: p.name.clone(),
            uuid: p.uuid,
        }),
        pool: pool.into(),
        keep,
        resume: false,
        preserve: None,
        zone: None,
        created: None,
        failback: false,
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
