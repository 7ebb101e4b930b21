//! `ferry replica restore` and `replica list` with the real binary: what a
//! restore refuses, and what the list leaves out.

use crate::common::assert_same_tree;
use crate::common::pair::{names_in, Pair};

/// Pins: every way `replica restore` can be wrong is refused with one line
/// naming the fix, exit 2, and nothing written on disk or in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_what_it_cannot_do_and_changes_nothing() {
    let pair = Pair::new(&[]).await;
    pair.run_ok().await;
    let to = pair.dst.mount.join("restored");
    let to_s = to.to_string_lossy().into_owned();
    std::fs::create_dir(pair.dst.mount.join("taken")).expect("mkdir");
    let taken = pair.dst.mount.join("taken").to_string_lossy().into_owned();
    let elsewhere = pair
        .src
        .mount
        .join("restored")
        .to_string_lossy()
        .into_owned();
    let in_ferry = pair
        .dst
        .mount
        .join(".ferry/restored")
        .to_string_lossy()
        .into_owned();
    let before = (
        names_in(&pair.dst.mount),
        names_in(&pair.dst.mount.join(".ferry")),
    );
    let cases: [(&[&str], &str); 6] = [
        (
            &["nas1", "videos", "--to", &to_s],
            "no verified replica of share videos from nas1",
        ),
        (&["nas9", "photos", "--to", &to_s], "replica list"),
        (
            &[
                "nas1",
                "photos",
                "--to",
                &to_s,
                "--snapshot",
                "photos_photos_20000101T000000Z",
            ],
            "no verified replica photos_photos_20000101T000000Z",
        ),
        (
            &["nas1", "photos", "--to", &taken],
            "exists; restore never overwrites",
        ),
        (
            &["nas1", "photos", "--to", &elsewhere],
            "on another filesystem than the replica",
        ),
        (
            &["nas1", "photos", "--to", &in_ferry],
            "inside a pool's .ferry directory",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["replica", "restore"];
        all.extend_from_slice(args);
        let err = pair.nas2.refused(2, &all);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(
        (
            names_in(&pair.dst.mount),
            names_in(&pair.dst.mount.join(".ferry"))
        ),
        before
    );
    assert!(!pair.src.mount.join("restored").exists());
    // Lines are found by the source's name or, when it is gone, its uuid.
    let uuid = pair.peer.uuid.to_string();
    let by_uuid = pair
        .nas2
        .json(&["replica", "list", "--source", &uuid, "--json"]);
    assert_eq!(
        by_uuid[0]["snapshot"],
        pair.replicas()[0].as_str(),
        "{by_uuid}"
    );
    let err = pair
        .nas2
        .refused(2, &["replica", "list", "--source", "nas9"]);
    assert!(err.contains("no appliance named nas9"), "{err}");
    // The one that is right works, and says where from.
    let out = pair
        .nas2
        .ok(&["replica", "restore", "nas1", "photos", "--to", &to_s]);
    assert!(out.contains(&pair.replicas()[0]), "{out}");
    assert_same_tree(&to, &pair.latest());
    // A replica deleted by hand is not listed, nor restorable.
    let replica = pair.replica_dir().join(&pair.replicas()[0]);
    crate::common::run(
        "btrfs",
        &["subvolume".as_ref(), "delete".as_ref(), replica.as_os_str()],
    );
    let listed = pair.nas2.json(&["replica", "list", "--json"]);
    assert_eq!(listed, serde_json::json!([]));
    let again = pair.dst.mount.join("again").to_string_lossy().into_owned();
    let err = pair
        .nas2
        .refused(2, &["replica", "restore", "nas1", "photos", "--to", &again]);
    assert!(err.contains("no verified replica"), "{err}");
}
