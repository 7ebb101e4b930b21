//! One meta-port session: the hellos and the peer's uuid, then each request
//! dispatched to its handler until the peer leaves, goes silent, or we shut down.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use uuid::Uuid;

use super::error::IdentityError;
use super::inventory::inventory;
use super::link::{Link, Peer};
use super::outcome::Next;
use super::prune::prune_now;
use super::reply::tell;
use super::shared::Shared;
use super::stats::Refusal;
use super::transfer;
use crate::store::Appliance;
use crate::wire::{self, handshake, Feature, Hello, Meta, MetaConn, Reason};

/// Runs the meta session of `appliance` (already authenticated by TLS, or
/// trusted by the caller, as tests over in-memory pipes are) on `stream` until
/// it ends. `cert_uuid` is the appliance uuid its pinned certificate names; the
/// hello must claim the same. Every outcome is logged; nothing is returned.
pub async fn serve_meta<S>(
    shared: &Shared,
    stream: S,
    appliance: Appliance,
    cert_uuid: Uuid,
    addr: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut conn = MetaConn::with_keepalive(stream, shared.config.keepalive);
    let me = Hello::new(shared.me.uuid, shared.me.name.clone(), &shared.features);
    let after = shared.config.handshake_timeout;
    let name = appliance.name.clone();
    let agreed = match timeout(after, handshake(&mut conn, me)).await {
        Ok(Ok(agreed)) => agreed,
        Ok(Err(e)) => {
            tracing::warn!(peer = %addr, appliance = %name, error = %e, "meta handshake failed");
            shared.stats().refused(Refusal::Handshake);
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %addr, appliance = %name, "meta handshake failed: no hello within {after:?}");
            shared.stats().refused(Refusal::Handshake);
            return;
        }
    };
    if let Err(e) = bind_uuid(shared, &appliance, cert_uuid, &agreed.peer) {
        tracing::warn!(peer = %addr, appliance = %name, "refused session: {e}");
        shared.stats().refused(Refusal::Refused);
        tell(&mut conn, Meta::Error(Reason::new(e.to_string()))).await;
        return;
    }
    tracing::info!(peer = %addr, appliance = %name, uuid = %cert_uuid,
        version = agreed.peer.version.as_deref().unwrap_or("before 0.2"),
        features = %agreed.features, "session opened");
    shared.stats().seen(&name);
    let mut link = Link {
        shared,
        conn,
        peer: Peer {
            appliance,
            uuid: cert_uuid,
            addr,
            features: agreed.features,
        },
    };
    dispatch(&mut link).await;
    // After dispatch: the session's share lock is released by now, so a retry may start.
    tracing::info!(peer = %addr, appliance = %name, "session ended");
}

/// Checks the hello's uuid against the certificate's, then binds the peer's uuid
/// (from the certificate) at its first contact; later contacts must present the same.
fn bind_uuid(
    shared: &Shared,
    peer: &Appliance,
    cert_uuid: Uuid,
    hello: &Hello,
) -> Result<(), IdentityError> {
    let name = peer.name.clone();
    if hello.appliance != cert_uuid {
        return Err(IdentityError::NotItsCertificate {
            name,
            claimed: hello.appliance,
            cert: cert_uuid,
        });
    }
    match peer.uuid {
        Some(known) if known == cert_uuid => Ok(()),
        Some(known) => Err(IdentityError::Rebound {
            name,
            claimed: hello.appliance,
            known,
        }),
        None => shared
            .db(|s| s.set_appliance_uuid(peer.id, cert_uuid))
            .map(drop)
            .map_err(|source| IdentityError::Record {
                name,
                uuid: cert_uuid,
                source: Box::new(source),
            }),
    }
}

/// Serves requests one at a time until the session ends.
async fn dispatch<S>(link: &mut Link<'_, S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shared = link.shared;
    // A transfer failed before the peer's Commit and was answered with Failed;
    // the Commit still on its way belongs to it.
    let mut stray_commit = false;
    loop {
        let msg = tokio::select! {
            msg = link.conn.recv_alive() => msg,
            () = shared.shutting_down() => {
                let bye = Meta::Abort(Reason::new("the receiver is shutting down"));
                tell(&mut link.conn, bye).await;
                return;
            }
        };
        let reply = match msg {
            Ok(Meta::Inventory(req)) => inventory(shared, &link.peer, &req).await,
            Ok(Meta::Prune(req)) if link.peer.features.has(Feature::RetentionGrid) => {
                prune_now(shared, &link.peer, &req).await
            }
            Ok(Meta::Begin(req)) => match transfer::run(link, req).await {
                Next::Continue { stray_commit: s } => {
                    stray_commit = s;
                    continue;
                }
                Next::Close => return,
            },
            Ok(Meta::Commit(_)) if std::mem::take(&mut stray_commit) => continue,
            Ok(Meta::Abort(r)) => {
                tracing::info!(peer = %link.peer.addr, appliance = %link.peer.name(),
                    "peer aborted outside a transfer: {}", r.reason);
                continue;
            }
            Ok(other) => {
                let reason = format!(
                    "protocol violation: {} is not a request this receiver answers",
                    other.kind()
                );
                close(link, reason).await;
                return;
            }
            Err(wire::Error::Closed) => return,
            Err(e) => {
                close(link, e.to_string()).await;
                return;
            }
        };
        stray_commit = false;
        if let Meta::Refused(r) = &reply {
            shared.stats().refused(Refusal::of(r));
        }
        if let Err(e) = link.conn.send(&reply).await {
            tracing::warn!(peer = %link.peer.addr, appliance = %link.peer.name(), error = %e, "session lost");
            return;
        }
    }
}

/// Ends the session over a protocol error, telling the peer why.
async fn close<S>(link: &mut Link<'_, S>, reason: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    tracing::warn!(peer = %link.peer.addr, appliance = %link.peer.name(), "session ended: {reason}");
    tell(&mut link.conn, Meta::Error(Reason { reason })).await;
}
