//! The meta-port messages: `Meta`, whose payload-carrying variants each wrap a
//! named struct, the hellos of both ports, and the optional protocol features.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::inventory::{Base, Inventory, InventoryReply, Parent, Parked, Replica, Withheld};
use super::Error;

/// The major protocol version, compared verbatim in both hellos: peers of
/// another major version do not talk at all. Everything optional within it is
/// a [`Feature`].
pub const PROTOCOL: &str = "ferry/1";

/// An optional capability of the protocol. A session uses a feature only when
/// both hellos list it; a peer that lists none (the predecessor release) gets
/// the base protocol. On the wire each is its kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// Send stream version 2 (`btrfs send --proto 2`): holes, fallocate and
    /// compressed extents cross as such. Listed only where btrfs-progs and the
    /// kernel can send or receive it.
    SendStreamV2,
    /// A transfer cut by a broken connection resumes where the receiver's copy
    /// ends: the receiver parks the session, and a later `begin` with
    /// `resume` continues it from an offset both sides prove by hash.
    Resume,
    /// Retention grids on the target: Begin carries the grid, its time zone
    /// and the snapshot's creation time; Inventory answers with each
    /// replica's creation time and the receiver's cap; `prune` applies a
    /// task's retention without a receive. Without it a receiver keeps the
    /// newest `keep` only, at its next receive.
    RetentionGrid,
    /// Failback: Inventory may carry the uuids a sender's replicas were
    /// received from, and the receiver answers with those of its own
    /// snapshots it can make a base of; Begin may then name such a base as
    /// the parent (`failback`). Without it, a restored replica's first run
    /// back is a full send.
    FailbackBases,
}

impl Feature {
    /// Every feature this build knows, in wire order.
    pub const ALL: &'static [Feature] = &[
        Feature::SendStreamV2,
        Feature::Resume,
        Feature::RetentionGrid,
        Feature::FailbackBases,
    ];

    /// The name in hellos (`"send-stream-v2"`).
    pub fn name(self) -> &'static str {
        match self {
            Feature::SendStreamV2 => "send-stream-v2",
            Feature::Resume => "resume",
            Feature::RetentionGrid => "retention-grid",
            Feature::FailbackBases => "failback-bases",
        }
    }

    /// The feature a hello names, or `None` for a name this build does not know
    /// (a newer peer's), which is ignored.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.iter().copied().find(|f| f.name() == name)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of features: what one side supports, or what a session may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features(BTreeSet<Feature>);

impl Features {
    pub fn new(features: impl IntoIterator<Item = Feature>) -> Features {
        Features(features.into_iter().collect())
    }

    /// The known features among `names`; unknown names are dropped.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Features {
        Features(names.into_iter().filter_map(Feature::from_name).collect())
    }

    /// What both sides support: all a session may use.
    pub fn common(&self, other: &Features) -> Features {
        Features(self.0.intersection(&other.0).copied().collect())
    }

    pub fn has(&self, f: Feature) -> bool {
        self.0.contains(&f)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Feature> + '_ {
        self.0.iter().copied()
    }

    /// Wire names, in a stable order.
    pub fn names(&self) -> Vec<String> {
        self.iter().map(|f| f.name().to_owned()).collect()
    }
}

impl fmt::Display for Features {
    /// Comma-separated names, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.names().join(", "))
    }
}

/// First frame each way on the meta port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The major version, [`PROTOCOL`].
    pub protocol: String,
    /// The sender of this hello, as registered with `ferry appliance add`.
    pub appliance: Uuid,
    pub name: String,
    /// Optional features this side supports, by wire name. Absent from the
    /// predecessor release's hello, which reads as none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The peer's ferry version (`0.2.0`), for logs and error messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Hello {
    /// A hello of this build's protocol and version, offering `features`.
    pub fn new(appliance: Uuid, name: impl Into<String>, features: &Features) -> Self {
        Hello {
            protocol: PROTOCOL.to_owned(),
            appliance,
            name: name.into(),
            features: features.names(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }
    }

    /// The known features this hello offers.
    pub fn features(&self) -> Features {
        Features::from_names(self.features.iter().map(String::as_str))
    }
}

/// Sender asks to start a receive of `snapshot`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begin {
    pub share: String,
    pub snapshot: String,
    /// The source snapshot's uuid: the replica's received_uuid must equal it.
    pub snapshot_uuid: Uuid,
    /// None: a full send.
    pub parent: Option<Parent>,
    pub pool: String,
    /// How many replicas the source wishes the target to keep.
    pub keep: u32,
    /// Continue a parked receive of this snapshot and parent, if there is one
    /// (feature `resume`); `ready` then says where.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resume: bool,
    /// Under `retention-grid`: the grid the source asks the target to keep
    /// besides the newest `keep` (`24h 7d 4w 12m`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve: Option<String>,
    /// Under `retention-grid`: the IANA time zone the grid's days begin in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Under `retention-grid`: when the snapshot was made (its btrfs otime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Under `failback-bases`: `parent` is one of the receiver's own
    /// snapshots, which its Inventory offered as a base (`parent.uuid` is
    /// that snapshot's uuid), not a replica of this line.
    #[serde(default, skip_serializing_if = "is_false")]
    pub failback: bool,
}

/// Under `retention-grid`, sender asks: apply this retention to the replicas
/// of `share` in `pool` now, without a receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prune {
    pub share: String,
    pub pool: String,
    /// Keep the newest this many.
    pub keep: u32,
    /// And the grid's (as in Begin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// What a `prune` deleted (snapshot names), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    pub deleted: Vec<String>,
}

/// The receive may start; its data connection names `session`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub session: Uuid,
    /// Set when this receive continues a parked one: the data connection must
    /// start at `offset`, and the sender's first `offset` bytes must hash to
    /// `blake3`. Absent: the stream starts at 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeAt>,
}

/// Where a parked receive's copy of the stream ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeAt {
    /// Bytes of the uncompressed send stream already applied.
    pub offset: u64,
    /// Hex BLAKE3 of those bytes.
    pub blake3: String,
}

/// A request the receiver will not serve. `busy`: a temporary reason (another
/// receive of the share, no free slot, the pool or database unavailable); try
/// again later. Otherwise asking again the same way gets the same answer.
/// `retry_after`: with `busy`, the seconds the receiver asks the sender to
/// wait at least before trying again; absent (as from the predecessor
/// release, which also ignores it) means no hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub reason: String,
    pub busy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// The sender's claims about the stream it sent: `stream_bytes` (bytes of the
/// uncompressed send stream) and `blake3` (hex) of those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub stream_bytes: u64,
    pub blake3: String,
}

/// The verdict: the replica is verified and visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub received_uuid: Uuid,
}

/// The verdict: the receive failed and left nothing. `permanent`: sending the
/// same stream again would fail the same way (the receiver says so); absent,
/// as from the predecessor release, it is temporary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub reason: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub permanent: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A reason a person can read, for `error` and `abort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub reason: String,
}

impl Reason {
    pub fn new(reason: impl Into<String>) -> Reason {
        Reason {
            reason: reason.into(),
        }
    }
}

/// Every meta-port message. On the wire: a JSON object whose `"type"` is the
/// snake_case variant name and whose other keys are the payload's fields
/// (`{"type":"begin","share":...}`); those names are the protocol and must not
/// change within `ferry/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Meta {
    Hello(Hello),
    /// Fatal for the connection; the side that sends it closes after it.
    Error(Reason),
    Inventory(Inventory),
    InventoryReply(InventoryReply),
    Begin(Begin),
    Ready(Ready),
    Refused(Refused),
    Commit(Commit),
    Received(Received),
    Failed(Failed),
    Prune(Prune),
    Pruned(Pruned),
    /// Either side gives up the current exchange (shutdown, its own failure).
    Abort(Reason),
    Ping,
    Pong,
}

impl Meta {
    /// The wire name of this message's kind, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Meta::Hello(_) => "hello",
            Meta::Error(_) => "error",
            Meta::Inventory(_) => "inventory",
            Meta::InventoryReply(_) => "inventory_reply",
            Meta::Begin(_) => "begin",
            Meta::Ready(_) => "ready",
            Meta::Refused(_) => "refused",
            Meta::Commit(_) => "commit",
            Meta::Received(_) => "received",
            Meta::Failed(_) => "failed",
            Meta::Prune(_) => "prune",
            Meta::Pruned(_) => "pruned",
            Meta::Abort(_) => "abort",
            Meta::Ping => "ping",
            Meta::Pong => "pong",
        }
    }

    /// This message, arriving where `expected` was awaited, as an error that
    /// keeps what the peer said when it said something meaningful.
    pub fn into_error(self, expected: &'static str) -> Error {
        match self {
            Meta::Error(r) => Error::Peer { reason: r.reason },
            Meta::Failed(f) => Error::Failed {
                reason: f.reason,
                permanent: f.permanent,
            },
            Meta::Refused(r) => Error::Refused {
                reason: r.reason,
                busy: r.busy,
                retry_after: r.retry_after.map(Duration::from_secs),
            },
            Meta::Abort(r) => Error::Aborted { reason: r.reason },
            other => Error::Unexpected {
                expected,
                got: other.kind().to_owned(),
            },
        }
    }
}

/// First frame on a data connection (JSON, framed as on the meta port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHello {
    pub protocol: String,
    /// From the meta port's `Ready`.
    pub session: Uuid,
    /// Uncompressed stream offset of this connection's first byte (bytes).
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
