//! The receiver against real loop-backed pools and real TLS on 127.0.0.1: verified
//! receives, refusals that write nothing, failures that leave nothing, recovery.

mod common;

use std::path::Path;

use common::client::Client;
use common::daemon::{wait_for_log, Pair};
use common::{assert_same_tree, TestPool};
use ferry::btrfs;
use ferry::store::{ReceiveFilter, ReceiveRow, Status};
use ferry::wire::{self, Meta};

fn history(pair: &Pair) -> Vec<ReceiveRow> {
    pair.target
        .store()
        .receive_history(&ReceiveFilter::default())
        .expect("history")
}

/// The names of the subvolumes directly in `dir` (none if it does not exist).
async fn subvolumes(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    btrfs::list(dir)
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.name)
        .collect()
}

fn latest(pair: &Pair) -> String {
    std::fs::read_link(pair.replica_dir().join("latest"))
        .expect("latest link")
        .to_string_lossy()
        .into_owned()
}

fn peer_reason(e: wire::Error) -> String {
    match e {
        wire::Error::Peer { reason } => reason,
        other => panic!("expected the receiver's verdict, got {other}"),
    }
}

#[tokio::test]
async fn full_then_incremental_receive_is_verified_and_visible() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    assert_eq!(c.server.name, "nas2");
    assert!(c
        .inventory("photos", "backup")
        .await
        .expect("inv")
        .is_empty());

    let s1 = pair.snapshot("s1").await;
    let got = c
        .replicate("photos", "backup", &s1, None, 5)
        .await
        .expect("s1");
    assert_eq!(got, s1.uuid);
    let s2 = pair.snapshot("s2").await;
    let got = c
        .replicate("photos", "backup", &s2, Some(&s1), 5)
        .await
        .expect("s2");
    assert_eq!(got, s2.uuid);

    assert_eq!(latest(&pair), "s2");
    let inv = c.inventory("photos", "backup").await.expect("inv");
    let mut listed: Vec<_> = inv
        .iter()
        .map(|r| (r.name.clone(), r.received_uuid))
        .collect();
    listed.sort();
    assert_eq!(listed, [("s1".into(), s1.uuid), ("s2".into(), s2.uuid)]);
    let dir = pair.replica_dir();
    assert_same_tree(&s1.path, &dir.join("s1"));
    assert_same_tree(&s2.path, &dir.join("s2"));
    assert_same_tree(&s2.path, &dir.join("latest"));

    let rows = history(&pair);
    assert_eq!(rows.len(), 2);
    for (row, snap) in rows.iter().zip([&s2, &s1]) {
        assert_eq!(row.status, Status::Succeeded, "{row:?}");
        assert_eq!(row.received_uuid, Some(snap.uuid));
        assert_eq!(row.source, "nas1");
        assert!(row.stream_bytes > 0 && row.wire_bytes > 0, "{row:?}");
    }
    assert_eq!(rows[0].parent.as_deref(), Some("s1"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(pair.dst.mount.join(".ferry"))
            .expect("stat")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    // The peer's uuid was bound at first contact.
    let nas1 = pair
        .target
        .store()
        .appliance("nas1")
        .expect("q")
        .expect("row");
    assert_eq!(nas1.uuid, Some(pair.peer.uuid));
    drop(c);
    d.stop().await;
}
