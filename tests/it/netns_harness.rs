//! The link-fault harness itself (`common::netns`): what it makes is gone
//! after a test that panicked with it.

use std::path::Path;
use std::process::Child;
use std::sync::Mutex;

use crate::common::netns::Link;

/// Pins: a [`Link`] is gone after a test that panicked with it: its
/// namespaces (with the veth pair and the nft tables in them) and the
/// processes it ran inside.
#[test]
fn harness_link_is_gone_after_a_panicking_test() {
    let seen: Mutex<Option<(String, String, Child)>> = Mutex::new(None);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let link = Link::new(None);
        link.blackhole();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &link.rx, "sleep", "600"])
            .spawn()
            .expect("a process inside");
        *seen.lock().expect("lock") = Some((link.tx.clone(), link.rx.clone(), child));
        panic!("on purpose, with the link up");
    }));
    assert!(panicked.is_err());
    let (tx, rx, mut child) = seen
        .lock()
        .expect("lock")
        .take()
        .expect("the link was made");
    for ns in [&tx, &rx] {
        assert!(
            !Path::new("/run/netns").join(ns).exists(),
            "namespace {ns} left behind"
        );
    }
    // Killed by the link's drop, not by the end of its sleep.
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
}
