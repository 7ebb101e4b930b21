//! What btrfs knows about one subvolume: its uuids (own, parent, received),
//! whether it is read-only, its generation and creation time.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What `btrfs subvolume show` says about one subvolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    /// The path it was looked up by.
    pub path: PathBuf,
    pub name: String,
    pub uuid: Uuid,
    pub parent_uuid: Option<Uuid>,
    pub received_uuid: Option<Uuid>,
    pub readonly: bool,
    /// The transaction id (a count, not a time) that last changed it.
    pub generation: u64,
    pub created: Option<DateTime<Utc>>,
}
