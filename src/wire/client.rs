//! The sender's side of a meta session as typed calls: each request returns its
//! reply's payload, and every other answer comes back as a typed [`Error`].

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::conn::MetaConn;
use super::handshake::{handshake, Agreed};
use super::message::{
    Begin, Commit, Features, Hello, Inventory, InventoryReply, Meta, Prune, Pruned, Ready, Reason,
    Received,
};
use super::Error;

/// An open meta session with a receiver, after the hellos.
///
/// Refusals and verdicts are errors: `refused` is [`Error::Refused`], `failed`
/// is [`Error::Failed`], an `error` frame is [`Error::Peer`], `abort` is
/// [`Error::Aborted`]; any other reply is [`Error::Unexpected`].
#[derive(Debug)]
pub struct Client<S> {
    conn: MetaConn<S>,
    agreed: Agreed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Exchanges hellos on `conn` (see [`handshake`]).
    ///
    /// # Errors
    ///
    /// What [`handshake`] returns.
    pub async fn handshake(mut conn: MetaConn<S>, me: Hello) -> Result<Client<S>, Error> {
        let agreed = handshake(&mut conn, me).await?;
        Ok(Client { conn, agreed })
    }

    /// The peer's hello.
    pub fn peer(&self) -> &Hello {
        &self.agreed.peer
    }

    /// The features this session may use: those both hellos listed.
    pub fn features(&self) -> &Features {
        &self.agreed.features
    }

    /// The connection, for what is not a request: watching it during a stream.
    pub fn conn(&mut self) -> &mut MetaConn<S> {
        &mut self.conn
    }

    /// What the receiver holds of `req.share` in `req.pool`.
    ///
    /// # Errors
    ///
    /// A refusal, the connection's errors, or a reply of another kind.
    pub async fn inventory(&mut self, req: Inventory) -> Result<InventoryReply, Error> {
        match self.request(Meta::Inventory(req)).await? {
            Meta::InventoryReply(reply) => Ok(reply),
            other => Err(other.into_error("inventory_reply")),
        }
    }

    /// Asks to start a receive; `Ready` names the data connection's session.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] (busy or not), the connection's errors, or a reply of
    /// another kind.
    pub async fn begin(&mut self, req: Begin) -> Result<Ready, Error> {
        match self.request(Meta::Begin(req)).await? {
            Meta::Ready(ready) => Ok(ready),
            other => Err(other.into_error("ready")),
        }
    }

    /// Sends the stream's claims and waits (keeping the session alive) for the
    /// verdict.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] with the receiver's reason, the connection's errors, or
    /// a reply of another kind.
    pub async fn commit(&mut self, req: Commit) -> Result<Received, Error> {
        match self.request(Meta::Commit(req)).await? {
            Meta::Received(received) => Ok(received),
            other => Err(other.into_error("received")),
        }
    }

    /// Asks the receiver to apply a retention now (only where the session
    /// agreed on `retention-grid`); returns what it deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] (busy: a receive of the share is running), the
    /// connection's errors, or a reply of another kind.
    pub async fn prune(&mut self, req: Prune) -> Result<Pruned, Error> {
        match self.request(Meta::Prune(req)).await? {
            Meta::Pruned(pruned) => Ok(pruned),
            other => Err(other.into_error("pruned")),
        }
    }

    /// Waits, keeping the session alive, until the receiver says anything in
    /// the middle of a transfer, which can only be why it ends early; returns
    /// that as the error. Cancel-safe: race it against the transfer.
    pub async fn interrupted(&mut self) -> Error {
        match self.conn.recv_alive().await {
            Ok(msg) => msg.into_error("nothing during the stream"),
            Err(e) => e,
        }
    }

    /// Tells the receiver this side gives up the current exchange. Best effort,
    /// bounded by the keepalive: the caller is failing anyway.
    pub async fn abort(&mut self, reason: impl Into<String>) {
        let after = self.conn.keepalive().interval;
        let msg = Meta::Abort(Reason::new(reason));
        let _ = timeout(after, self.conn.send(&msg)).await;
    }

    /// Ends the session with a clean close of the stream (for TLS, a
    /// close_notify), so the receiver logs a clean end. Best effort, bounded.
    pub async fn close(self) {
        let after = self.conn.keepalive().interval;
        let mut stream = self.conn.into_inner();
        let _ = timeout(after, stream.shutdown()).await;
    }

    async fn request(&mut self, msg: Meta) -> Result<Meta, Error> {
        self.conn.send(&msg).await?;
        self.conn.recv_alive().await
    }
}
