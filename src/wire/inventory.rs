//! What a sender and a receiver say about the replicas a line holds: the
//! Inventory exchange and the parent a Begin names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A snapshot the receiver holds for the asking source and share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub name: String,
    /// Equals the uuid of the source snapshot it was received from.
    pub received_uuid: Uuid,
    pub received_at: DateTime<Utc>,
    /// Under `retention-grid`: when its source snapshot was made (the
    /// source's btrfs otime, as Begin said), which places it in the grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
}

/// The base of an incremental send; the receiver must hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    pub name: String,
    pub uuid: Uuid,
}

/// Sender asks: what do you hold from me for this share, in this pool?
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub share: String,
    pub pool: String,
    /// Under `failback-bases`: the uuids the sender's candidate bases were
    /// received from (the replicas its share was restored from), newest
    /// first: which of these snapshots of yours can be a parent? Absent:
    /// none asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<Uuid>,
}

/// The verified replicas the receiver holds for the asked share and pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReply {
    pub replicas: Vec<Replica>,
    /// A receive of this share the receiver parked when its connection broke
    /// (feature `resume`): a `begin` of the same snapshot and parent with
    /// `resume` continues it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<Parked>,
    /// Under `retention-grid`: the most replicas this receiver keeps of one
    /// line (`max_replicas_per_line`), whatever a sender asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    /// Replicas the receiver still holds but does not offer as parents, and
    /// why (changed after they were received, made writable...): the sender
    /// names them when it passes them over, and does not reuse their names.
    /// Absent from older receivers: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<Withheld>,
    /// Under `failback-bases`, for the `bases` asked: those of the
    /// receiver's own snapshots it can make the parent of this line's next
    /// receive, in the order asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<Base>,
    /// Under `failback-bases`: the `bases` asked that it cannot serve, and
    /// why (`name` empty when it holds no snapshot of that uuid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases_withheld: Vec<Withheld>,
}

/// One of the receiver's own snapshots it offers as a failback base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// The snapshot's name on the receiver (its task's snapshot directory).
    pub name: String,
    /// The snapshot's uuid: what the sender's replica was received from.
    pub uuid: Uuid,
    /// Why it qualifies, as a phrase for the sender's row and log.
    pub why: String,
}

/// A parked receive, as Inventory reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub snapshot: String,
    pub snapshot_uuid: Uuid,
    pub parent: Option<Parent>,
    /// Bytes of the send stream it holds.
    pub offset: u64,
}

/// A replica held but not offered as a parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    pub name: String,
    pub received_uuid: Uuid,
    /// Why, as a phrase: "changed after it was received (ctransid ...)".
    pub reason: String,
}
