//! What btrfs knows about one subvolume: its uuids (own, parent, received),
//! whether it is read-only, its generation, creation time and transids.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// When a subvolume changed, in btrfs transaction ids (counts of the
/// filesystem's commits, not times), from `BTRFS_IOC_GET_SUBVOL_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transids {
    /// The last transaction that changed anything in it.
    pub ctransid: u64,
    /// The transaction that created it.
    pub otransid: u64,
    /// On a received subvolume: the sender's ctransid of what was sent; else 0.
    pub stransid: u64,
    /// On a received subvolume: the transaction that marked it received; else 0.
    pub rtransid: u64,
    /// When it was marked received.
    pub received_at: Option<DateTime<Utc>>,
}

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
    /// The transaction that last changed the subvolume's content (`ctransid`).
    /// A snapshot starts with its source's, and taking a snapshot does not
    /// move the source's (its `generation` does move), so a share whose
    /// ctransid equals its snapshot's is unchanged since, and a snapshot
    /// nobody touched has `ctransid <= otransid`. `None` where btrfs-progs
    /// answered (kernels before 4.18): it does not print it.
    pub ctransid: Option<u64>,
    pub created: Option<DateTime<Utc>>,
    /// The transaction that created it ("Gen at creation"). Grows with every
    /// subvolume made on one filesystem, whatever the clock says: it orders
    /// snapshots.
    pub otransid: u64,
    /// For a received subvolume: the sender's `ctransid` when it was sent; else 0.
    pub stransid: u64,
    /// For a received subvolume: the transaction that recorded the receive; else 0.
    pub rtransid: u64,
}

impl Subvolume {
    /// Whether its contents changed after it was created, as a snapshot's may
    /// when someone makes it writable, edits it and makes it read-only again.
    /// `None` when the kernel did not say (see [`Subvolume::ctransid`]).
    pub fn changed_since_created(&self) -> Option<bool> {
        self.ctransid.map(|c| c > self.otransid)
    }
}
