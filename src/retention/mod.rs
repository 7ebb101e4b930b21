//! Retention policy shared by both sides: the time grid (`24h 7d 4w 12m 2y`),
//! "always keep the newest N", protected bases and a cap, decided per snapshot.
//!
//! Pure and clock-free: callers pass each snapshot's creation time (btrfs
//! otime), what they protect, the time zone periods are counted in, and now.
//! Imports no other ferry module, so sender, receiver and CLI all use it.

mod decide;
mod grid;
mod zone;

pub use decide::{decide, period, Drop, Policy, Rule, Verdict};
pub use grid::{Grid, GridError, Term, Unit, MAX_COUNT};
pub use zone::{parse_zone, Zone};

/// The receiver's default cap on one replica line (pool, source, share):
/// about five times what the default target retention keeps (5 newest and
/// `24h 7d 4w 12m`: at most 52), and within the low hundreds of snapshots per
/// subvolume that btrfs handles without slowing down (docs/design.md).
pub const DEFAULT_MAX_REPLICAS_PER_LINE: u32 = 250;
