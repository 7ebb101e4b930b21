//! One meta-port session: hellos and the peer's uuid, then Inventory and Begin
//! requests until the peer leaves, goes silent, or the receiver shuts down.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use uuid::Uuid;

use super::shared::Shared;
use super::{admit, disk, pool, replica_dir, transfer};
use crate::names;
use crate::store::Appliance;
use crate::wire::{self, handshake, Hello, Meta, MetaConn, Parent, Replica};

/// An authenticated peer on an open meta connection.
pub(super) struct Session<'a, S> {
    pub shared: &'a Shared,
    pub conn: MetaConn<S>,
    pub peer: Appliance,
    pub source_uuid: Uuid,
    pub addr: SocketAddr,
    /// A transfer failed before the peer's Commit and was answered with Failed;
    /// the Commit still on its way belongs to it.
    pub stray_commit: bool,
}

/// What the sender asked for in `Begin`.
#[derive(Debug, Clone)]
pub(super) struct Begin {
    pub share: String,
    pub snapshot: String,
    pub snapshot_uuid: Uuid,
    pub parent: Option<Parent>,
    pub pool: String,
    pub keep: u32,
}

/// Runs the meta session of `peer` (already authenticated by TLS, or trusted by
/// the caller, as tests over in-memory pipes are) on `stream` until it ends.
/// `cert_uuid` is the appliance uuid its pinned certificate names; the hello
/// must claim the same. Every outcome is logged; nothing is returned.
pub async fn serve_meta<S>(
    shared: &Shared,
    stream: S,
    peer: Appliance,
    cert_uuid: Uuid,
    addr: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut conn = MetaConn::new(stream);
    let me = Hello::new(shared.me.uuid, shared.me.name.clone());
    let after = shared.config.handshake_timeout;
    let hello = match timeout(after, handshake(&mut conn, me)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            tracing::warn!(peer = %addr, appliance = %peer.name, error = %e, "meta handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %addr, appliance = %peer.name, "meta handshake failed: no hello within {after:?}");
            return;
        }
    };
    if let Err(reason) = bind_uuid(shared, &peer, cert_uuid, &hello) {
        tracing::warn!(peer = %addr, appliance = %peer.name, "refused session: {reason}");
        tell(&mut conn, Meta::Error { reason }).await;
        return;
    }
    tracing::info!(peer = %addr, appliance = %peer.name, uuid = %hello.appliance, "session opened");
    let mut session = Session {
        shared,
        conn,
        source_uuid: hello.appliance,
        peer,
        addr,
        stray_commit: false,
    };
    session.run().await;
    // After run: the session's share lock is released by now, so a retry may start.
    tracing::info!(peer = %addr, appliance = %session.peer.name, "session ended");
}

/// Checks the hello's uuid against the certificate's, then binds the peer's uuid
/// (from the certificate) at its first contact; later contacts must present the same.
fn bind_uuid(
    shared: &Shared,
    peer: &Appliance,
    cert_uuid: Uuid,
    hello: &Hello,
) -> Result<(), String> {
    if hello.appliance != cert_uuid {
        return Err(format!(
            "appliance {} says its uuid is {}, but its certificate names {cert_uuid}",
            peer.name, hello.appliance
        ));
    }
    match peer.uuid {
        Some(known) if known == cert_uuid => Ok(()),
        Some(known) => Err(format!(
            "appliance {} says its uuid is {}, but this receiver knows it as {known}; \
             if it was re-initialized, remove and re-add it here (`ferry appliance remove {}`)",
            peer.name, hello.appliance, peer.name
        )),
        None => shared
            .db(|s| s.set_appliance_uuid(peer.id, cert_uuid))
            .map_err(|e| {
                format!(
                    "cannot record uuid {cert_uuid} for appliance {} (is it already another appliance's?): {e}",
                    peer.name
                )
            }),
    }
}

/// Best effort: the session ends anyway, so a failure to deliver is only logged.
pub(super) async fn tell<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut MetaConn<S>, msg: Meta) {
    match timeout(wire::KEEPALIVE_INTERVAL, conn.send(&msg)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "could not deliver {}", msg.kind()),
        Err(_) => tracing::debug!("could not deliver {}: the peer is not reading", msg.kind()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    async fn run(&mut self) {
        loop {
            let msg = tokio::select! {
                msg = self.conn.recv_alive() => msg,
                () = self.shared.shutting_down() => {
                    tell(&mut self.conn, Meta::Abort { reason: "the receiver is shutting down".into() }).await;
                    return;
                }
            };
            let reply = match msg {
                Ok(Meta::Inventory { share, pool }) => self.inventory(&share, &pool).await,
                Ok(Meta::Begin {
                    share,
                    snapshot,
                    snapshot_uuid,
                    parent,
                    pool,
                    keep,
                }) => {
                    self.stray_commit = false;
                    let begin = Begin {
                        share,
                        snapshot,
                        snapshot_uuid,
                        parent,
                        pool,
                        keep,
                    };
                    match transfer::run(self, begin).await {
                        transfer::Next::Continue => continue,
                        transfer::Next::Close => return,
                    }
                }
                Ok(Meta::Commit { .. }) if std::mem::take(&mut self.stray_commit) => continue,
                Ok(Meta::Abort { reason }) => {
                    tracing::info!(peer = %self.addr, appliance = %self.peer.name, "peer aborted outside a transfer: {reason}");
                    continue;
                }
                Ok(other) => {
                    let reason = format!(
                        "protocol violation: {} is not a request this receiver answers",
                        other.kind()
                    );
                    self.close(reason).await;
                    return;
                }
                Err(wire::Error::Closed) => return,
                Err(e) => {
                    self.close(e.to_string()).await;
                    return;
                }
            };
            if let Err(e) = self.conn.send(&reply).await {
                tracing::warn!(peer = %self.addr, appliance = %self.peer.name, error = %e, "session lost");
                return;
            }
        }
    }

    /// Ends the session over a protocol error, telling the peer why.
    async fn close(&mut self, reason: String) {
        tracing::warn!(peer = %self.addr, appliance = %self.peer.name, "session ended: {reason}");
        tell(&mut self.conn, Meta::Error { reason }).await;
    }

    /// Verified replicas of this source's `share` in `pool` that are still on disk,
    /// read-only, with their received_uuid: what the sender may use as a parent.
    async fn inventory(&self, share: &str, pool: &str) -> Meta {
        if let Err(e) = names::validate("share", share).and(names::validate("pool", pool)) {
            return refused(e.to_string());
        }
        let pool_row = match self.shared.db(|s| s.pool(pool)) {
            Ok(Some(p)) => p,
            Ok(None) => return refused(self.not_exposed(pool)),
            Err(e) => return refused(format!("receiver state database: {e}")),
        };
        let rows = match self
            .shared
            .db(|s| s.replicas(pool, self.source_uuid, share))
        {
            Ok(rows) => rows,
            Err(e) => return refused(format!("receiver state database: {e}")),
        };
        // An empty answer makes the sender delete its snapshots: a pool that is
        // not there, or a replica that cannot be read, is "ask again", never "none".
        if let Err(reason) = pool::check(self.shared, &pool_row) {
            tracing::warn!(peer = %self.addr, appliance = %self.peer.name, "inventory refused: {reason}");
            return busy(reason);
        }
        let dir = replica_dir(&pool_row.path, self.source_uuid, share);
        let mut replicas = Vec::with_capacity(rows.len());
        for r in rows {
            let intact = match disk::is_intact(&dir, &r.snapshot, r.received_uuid).await {
                Ok(intact) => intact,
                Err(e) => return admit::unreadable(&pool_row, &r.snapshot, &e),
            };
            if intact {
                replicas.push(Replica {
                    name: r.snapshot,
                    received_uuid: r.received_uuid,
                    received_at: r.received_at,
                });
            }
        }
        tracing::info!(peer = %self.addr, appliance = %self.peer.name, share, pool,
            replicas = replicas.len(), "inventory");
        Meta::InventoryReply { replicas }
    }

    pub(super) fn not_exposed(&self, pool: &str) -> String {
        format!(
            "pool {pool} is not exposed on {}; add it there with `ferry pool add {pool} PATH`",
            self.shared.me.name
        )
    }
}

/// A refusal the sender should not retry as is.
pub(super) fn refused(reason: String) -> Meta {
    Meta::Refused {
        reason,
        busy: false,
    }
}

/// A temporary refusal: the sender retries soon and must not read it as an answer.
pub(super) fn busy(reason: String) -> Meta {
    Meta::Refused { reason, busy: true }
}
