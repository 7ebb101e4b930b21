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
        // `ip netns exec` enters the namespace and then becomes `sleep`; until
        // it has, the namespace lists no process (a loaded machine is slow here).
        inside(&link.rx, child.id());
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

/// Waits (up to 30 s) until `pid` is listed inside the namespace `ns`.
fn inside(ns: &str, pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .expect("ip netns pids");
        let listed = String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == pid.to_string());
        if listed {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} never entered namespace {ns}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
