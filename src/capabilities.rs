//! What this appliance can do, as protocol features to offer in hellos: probed
//! once per process from the kernel and btrfs-progs, never assumed.

use crate::wire::{Feature, Features};

/// The features this appliance offers its peers. A feature is listed only when
/// every local part it needs is there. `resume` and `retention-grid` need
/// nothing beyond this build (ferry's own code), so they are always offered.
pub fn offered() -> Features {
    Features::new([Feature::Resume, Feature::RetentionGrid])
}
