//! What this appliance can do, as protocol features to offer in hellos: probed
//! once per process from the kernel and btrfs-progs, never assumed.

use std::sync::OnceLock;

use crate::btrfs::{self, SendSupport};
use crate::wire::{Feature, Features};

/// What btrfs here supports, probed at the first call (it runs `btrfs send
/// --help`, so call it off the async workers) and kept for the process.
pub fn send_support() -> SendSupport {
    static PROBED: OnceLock<SendSupport> = OnceLock::new();
    *PROBED.get_or_init(|| {
        let found = btrfs::send_support();
        tracing::debug!(
            kernel_stream = found.kernel,
            progs_proto = found.progs_proto,
            progs_compressed_data = found.progs_compressed_data,
            "btrfs send support"
        );
        found
    })
}

/// The features this appliance offers its peers. A feature is listed only when
/// every local part it needs is there:
///
/// - `resume` and `retention-grid` need nothing beyond this build;
/// - `failback-bases`: the kernel marks a copy of a snapshot as received
///   (`BTRFS_IOC_SET_RECEIVED_SUBVOL`, Linux 3.12+), which a receiver needs
///   to make a failback base; a sender asks for bases only where it offers
///   the feature too;
/// - `send-stream-v2`: the kernel emits version 2 streams and btrfs-progs
///   sends (`--proto`) and receives them. Both ends check their own machine,
///   so a session uses version 2 only when both can.
pub fn offered() -> Features {
    features_of(send_support())
}

fn features_of(support: SendSupport) -> Features {
    let v2 = support.stream_v2().then_some(Feature::SendStreamV2);
    let failback = support.set_received.then_some(Feature::FailbackBases);
    Features::new(
        [Feature::Resume, Feature::RetentionGrid]
            .into_iter()
            .chain(v2)
            .chain(failback),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_v2_is_offered_only_when_kernel_and_btrfs_progs_both_have_it() {
        let both = SendSupport {
            kernel: 2,
            progs_proto: true,
            progs_compressed_data: true,
            set_received: true,
        };
        assert!(features_of(both).has(Feature::SendStreamV2));
        let old_kernel = SendSupport { kernel: 1, ..both };
        assert!(!features_of(old_kernel).has(Feature::SendStreamV2));
        let old_progs = SendSupport {
            progs_proto: false,
            progs_compressed_data: false,
            ..both
        };
        assert!(!features_of(old_progs).has(Feature::SendStreamV2));
        assert!(features_of(old_progs).has(Feature::Resume));
        assert!(features_of(both).has(Feature::FailbackBases));
        let old_kernel = SendSupport {
            set_received: false,
            ..both
        };
        assert!(!features_of(old_kernel).has(Feature::FailbackBases));
    }
}
