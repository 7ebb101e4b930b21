//! The meta-port messages (`Meta`), the hellos on both ports, and the version
//! handshake that refuses a peer speaking another protocol.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use uuid::Uuid;

use super::frame::{read_frame, MetaConn, DEAD_AFTER};
use super::Error;

/// The protocol this build speaks; compared verbatim in both hellos.
pub const PROTOCOL: &str = "ferry/1";

/// First frame each way on the meta port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: String,
    /// The sender of this hello, as registered with `ferry appliance add`.
    pub appliance: Uuid,
    pub name: String,
}

impl Hello {
    pub fn new(appliance: Uuid, name: impl Into<String>) -> Self {
        Hello {
            protocol: PROTOCOL.to_owned(),
            appliance,
            name: name.into(),
        }
    }
}

/// A snapshot the receiver holds for the asking source and share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub name: String,
    /// Equals the uuid of the source snapshot it was received from.
    pub received_uuid: Uuid,
    pub received_at: DateTime<Utc>,
}

/// The base of an incremental send; the receiver must hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    pub name: String,
    pub uuid: Uuid,
}

/// Every meta-port message. On the wire: a JSON object whose `"type"` is the
/// snake_case variant name (`{"type":"begin",...}`); those names are the
/// protocol and must not change within `ferry/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Meta {
    Hello(Hello),
    /// Fatal for the connection; the sender closes after it.
    Error {
        reason: String,
    },
    /// Sender asks: what do you hold from me for this share, in this pool?
    Inventory {
        share: String,
        pool: String,
    },
    InventoryReply {
        replicas: Vec<Replica>,
    },
    Begin {
        share: String,
        snapshot: String,
        snapshot_uuid: Uuid,
        /// None: full send.
        parent: Option<Parent>,
        pool: String,
        /// How many replicas the source wishes the target to keep.
        keep: u32,
    },
    /// The data connection for this transfer names `session`.
    Ready {
        session: Uuid,
    },
    /// `busy`: another receive of this share is running; try later.
    Refused {
        reason: String,
        busy: bool,
    },
    /// `stream_bytes` and `blake3` (hex) cover the uncompressed send stream.
    Commit {
        stream_bytes: u64,
        blake3: String,
    },
    Received {
        received_uuid: Uuid,
    },
    Failed {
        reason: String,
    },
    Abort {
        reason: String,
    },
    Ping,
    Pong,
}

impl Meta {
    /// The wire name of this message's kind, for logs and errors. Read back
    /// from serde so it can never disagree with what goes on the wire.
    pub fn kind(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .as_ref()
            .and_then(|v| v.get("type")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// Exchanges hellos: sends `me`, then reads the peer's and returns it.
///
/// The peer's first frame is inspected as loose JSON before it is decoded as a
/// [`Meta`], so a peer of another version, whose hello may have a different
/// shape, still gets a readable "versions differ" instead of a decode error.
/// On a mismatch an `error` frame naming both versions is sent before
/// returning [`Error::VersionMismatch`]; the caller then closes.
pub async fn handshake<S>(conn: &mut MetaConn<S>, me: Hello) -> Result<Hello, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ours = me.protocol.clone();
    let my_name = me.name.clone();
    conn.send(&Meta::Hello(me)).await?;
    // A peer that connects and says nothing must not hold the slot forever.
    let first: Value = timeout(DEAD_AFTER, conn.recv_as())
        .await
        .map_err(|_| Error::Timeout { after: DEAD_AFTER })??;
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
        tell_peer(
            conn,
            format!(
                "protocol mismatch: {their_name} speaks {theirs}, {my_name} speaks {ours}; \
                 upgrade ferry on the older appliance"
            ),
        )
        .await;
        return Err(Error::VersionMismatch { ours, theirs });
    }
    match serde_json::from_value(first).map_err(Error::Decode)? {
        Meta::Hello(peer) => Ok(peer),
        other => Err(Error::unexpected("hello", other)),
    }
}

/// Best effort: the connection is being given up anyway, so a failure to
/// deliver the reason must not mask the error that caused it.
async fn tell_peer<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut MetaConn<S>, reason: String) {
    let _ = timeout(DEAD_AFTER, conn.send(&Meta::Error { reason })).await;
}

/// First frame on a data connection (JSON, framed as on the meta port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHello {
    pub protocol: String,
    /// From the meta port's `Ready`.
    pub session: Uuid,
    /// Uncompressed stream offset of this connection's first byte; lets an
    /// interrupted transfer resume mid-stream.
    pub offset: u64,
}

impl DataHello {
    pub fn new(session: Uuid, offset: u64) -> Self {
        DataHello {
            protocol: PROTOCOL.to_owned(),
            session,
            offset,
        }
    }
}

/// Reads and version-checks a data connection's first frame. There is no
/// reply channel on the data port: a mismatch is reported on the meta port.
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
#[path = "meta_tests.rs"]
mod tests;
