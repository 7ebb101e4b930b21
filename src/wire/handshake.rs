//! The version handshake of both ports: hellos, the major-version check that
//! refuses a peer of another `ferry/N`, and the features a session may use.

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;

use super::conn::MetaConn;
use super::frame::read_frame;
use super::message::{DataHello, Features, Hello, Meta, Reason, PROTOCOL};
use super::Error;

/// What a meta handshake settled: who the peer says it is, and the features
/// both sides support, which are all this session may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    pub peer: Hello,
    pub features: Features,
}

/// Exchanges hellos: sends `me`, then reads the peer's, waiting at most the
/// connection's [`super::Keepalive::dead_after`].
///
/// The peer's first frame is inspected as loose JSON before it is decoded, so
/// a peer of another major version, whose hello may have another shape, still
/// gets a readable "versions differ" instead of a decode error. On a mismatch
/// an `error` frame naming both versions is sent before returning.
///
/// # Errors
///
/// [`Error::VersionMismatch`] for another major version, [`Error::Peer`] when
/// the peer's first word is an `error` (it refused us), [`Error::Unexpected`]
/// or [`Error::Decode`] for a first frame that is not a hello, [`Error::Timeout`]
/// for silence, and the connection's own errors.
pub async fn handshake<S>(conn: &mut MetaConn<S>, me: Hello) -> Result<Agreed, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ours = me.protocol.clone();
    let my_name = me.name.clone();
    let my_version = me.version.clone();
    let offered = me.features();
    conn.send(&Meta::Hello(me)).await?;
    // A peer that connects and says nothing must not hold the slot forever.
    let after = conn.keepalive().dead_after;
    let first: Value = timeout(after, conn.recv_as())
        .await
        .map_err(|_| Error::Timeout { after })??;
    let field = |k: &str| first.get(k).and_then(Value::as_str).map(str::to_owned);

    match field("type").as_deref() {
        Some("hello") => {}
        Some("error") => {
            return Err(Error::Peer {
                reason: field("reason").unwrap_or_default(),
            })
        }
        other => {
            let err = Error::Unexpected {
                expected: "hello",
                got: other.unwrap_or("a message without a type").to_owned(),
            };
            tell_peer(conn, err.to_string()).await;
            return Err(err);
        }
    }
    let theirs = field("protocol").unwrap_or_else(|| "an unnamed protocol".to_owned());
    if theirs != ours {
        let their_name = field("name").unwrap_or_else(|| "the peer".to_owned());
        let version = |v: Option<String>| v.map(|v| format!(" (ferry {v})")).unwrap_or_default();
        tell_peer(
            conn,
            format!(
                "protocol mismatch: {their_name} speaks {theirs}{}, {my_name} speaks {ours}{}; \
                 upgrade ferry on the older appliance",
                version(field("version")),
                version(my_version),
            ),
        )
        .await;
        return Err(Error::VersionMismatch { ours, theirs });
    }
    match serde_json::from_value(first).map_err(Error::Decode)? {
        Meta::Hello(peer) => {
            let features = offered.common(&peer.features());
            Ok(Agreed { peer, features })
        }
        other => Err(other.into_error("hello")),
    }
}

/// Best effort: the connection is being given up anyway, so a failure to
/// deliver the reason must not mask the error that caused it.
async fn tell_peer<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut MetaConn<S>, reason: String) {
    let after = conn.keepalive().dead_after;
    let _ = timeout(after, conn.send(&Meta::Error(Reason { reason }))).await;
}

/// Reads and version-checks a data connection's first frame. There is no
/// reply channel on the data port: a mismatch is reported on the meta port.
///
/// # Errors
///
/// [`Error::VersionMismatch`] for another major version; framing and decode errors.
pub async fn read_data_hello<R: AsyncRead + Unpin>(r: &mut R) -> Result<DataHello, Error> {
    let v: Value = read_frame(r).await?;
    let theirs = v
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("an unnamed protocol");
    if theirs != PROTOCOL {
        return Err(Error::VersionMismatch {
            ours: PROTOCOL.to_owned(),
            theirs: theirs.to_owned(),
        });
    }
    serde_json::from_value(v).map_err(Error::Decode)
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
