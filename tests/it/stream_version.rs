//! Send stream versions: version 2 when both appliances support it (negotiated
//! as `send-stream-v2`), version 1 with a peer that does not; which one a run
//! used is on both rows. Version 2 keeps a replica sparse.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use nix::unistd::Whence;

use crate::common::assert_same_tree;
use crate::common::ferry::task_add;
use crate::common::pair::Pair;

fn u64_of(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Bytes the file really occupies on disk.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").blocks() * 512
}

fn punch_hole(path: &Path, offset: u64, len: u64) {
    crate::common::run(
        "fallocate",
        &[
            "-p".as_ref(),
            "-o".as_ref(),
            offset.to_string().as_ref(),
            "-l".as_ref(),
            len.to_string().as_ref(),
            path.as_os_str(),
        ],
    );
}

/// Pins issue 10, fault 2: with send stream v1, punching 64 KiB into an 8 GiB
/// sparse image streamed gigabytes of zeros into a 1 GiB target (ENOSPC), and
/// the replica stopped being sparse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_punched_in_a_sparse_image_crosses_as_a_hole_and_the_replica_stays_sparse() {
    let ferry::btrfs::SendSupport { kernel, .. } = ferry::capabilities::send_support();
    assert!(
        ferry::capabilities::send_support().stream_v2(),
        "this machine must send stream v2 (kernel says {kernel}; btrfs-progs needs `send --proto`)"
    );
    let pair = Pair::new(&[]).await;
    let image = pair.share.join("vm.img");
    let file = std::fs::File::create(&image).expect("create");
    file.set_len(8 << 30).expect("8 GiB sparse");
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    file.write_all_at(&data, 4 << 30)
        .expect("1 MiB in the middle");
    file.sync_all().expect("sync");
    drop(file);

    pair.run_ok().await;
    let rows = pair.send_rows();
    let full = &rows[0];
    assert_eq!(full["stream_version"], 2, "{full}");
    assert!(u64_of(&full["stream_bytes"]) < 3 << 20, "{full}");
    assert_eq!(pair.receive_rows()[0]["stream_version"], 2);

    punch_hole(&image, (4 << 30) + (256 << 10), 64 << 10);
    let out = pair.run_ok().await;
    assert!(out.contains("incremental"), "{out}");
    let rows = pair.send_rows();
    let incremental = &rows[0];
    assert_eq!(incremental["stream_version"], 2, "{incremental}");
    assert!(
        u64_of(&incremental["stream_bytes"]) < 16 << 10,
        "a 64 KiB hole is a few hundred bytes of stream: {incremental}"
    );
    assert_eq!(pair.receive_rows()[0]["stream_version"], 2);

    let replica = pair.latest().join("vm.img");
    assert_eq!(std::fs::metadata(&replica).expect("stat").len(), 8 << 30);
    assert!(
        allocated(&replica) < 2 << 20,
        "the replica is no longer sparse: {} bytes allocated",
        allocated(&replica)
    );
    // The same data in the same places, and holes where the share has them
    // (hashing 8 GiB of holes would take a minute).
    for at in [0, 4 << 30, (4 << 30) + (300 << 10)] {
        assert_eq!(
            (
                seek(&replica, at, Whence::SeekData),
                seek(&replica, at, Whence::SeekHole)
            ),
            (
                seek(&image, at, Whence::SeekData),
                seek(&image, at, Whence::SeekHole)
            ),
            "extents differ from offset {at}"
        );
    }
    let read = |path: &Path| {
        let mut buf = vec![0u8; 1 << 20];
        std::fs::File::open(path)
            .expect("open")
            .read_exact_at(&mut buf, 4 << 30)
            .expect("read");
        buf
    };
    assert!(read(&replica) == read(&image), "the data region differs");
}

/// Where the next data (or hole) starts at or after `at`; `None` past the last data.
fn seek(path: &Path, at: u64, whence: Whence) -> Option<i64> {
    let file = std::fs::File::open(path).expect("open");
    let at = i64::try_from(at).expect("offset");
    nix::unistd::lseek(&file, at, whence).ok()
}

/// A receiver that does not offer `send-stream-v2` (an older release, or old
/// btrfs-progs there) gets version 1 streams, and the replica is still right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_without_stream_v2_gets_version_1() {
    let pair = Pair::with_receiver(&[], |c| {
        c.features = ferry::wire::Features::default();
    })
    .await;
    crate::common::content::populate(&pair.share);
    pair.run_ok().await;
    crate::common::content::change(&pair.share);
    pair.run_ok().await;
    for (sent, received) in pair
        .send_rows()
        .as_array()
        .expect("rows")
        .iter()
        .zip(pair.receive_rows().as_array().expect("rows"))
    {
        assert_eq!(sent["stream_version"], 1, "{sent}");
        assert_eq!(received["stream_version"], 1, "{received}");
    }
    assert_same_tree(&pair.share, &pair.latest());
}

/// `--send-compressed auto` (the default) passes extents the share's
/// filesystem compressed through as they are; `no` has btrfs send inflate them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_extents_cross_compressed_unless_the_task_says_no() {
    let pair = Pair::new(&[]).await;
    let other = pair.src.subvolume("documents");
    let other_s = other.to_str().expect("utf8");
    let extra = ["--send-compressed", "no"];
    pair.nas1.ok(&task_add("documents", other_s, "5m", &extra));
    let shown = pair.nas1.json(&["task", "show", "documents", "--json"]);
    assert_eq!(shown["send_compressed"], "no");
    assert_eq!(
        pair.nas1.json(&["task", "show", "photos", "--json"])["send_compressed"],
        "auto"
    );
    let text: String = (0..200_000)
        .map(|i| format!("line {i} of a text that compresses\n"))
        .collect();
    // The property is inherited by files created under the directory, the
    // received ones too: a file older than the property would differ.
    for entry in std::fs::read_dir(&pair.share).expect("read share") {
        std::fs::remove_file(entry.expect("entry").path()).expect("empty the share");
    }
    for share in [&pair.share, &other] {
        crate::common::run(
            "btrfs",
            &[
                "property".as_ref(),
                "set".as_ref(),
                share.as_os_str(),
                "compression".as_ref(),
                "zstd".as_ref(),
            ],
        );
        std::fs::write(share.join("text"), &text).expect("write");
    }
    crate::common::run("sync", &[]);
    pair.run_ok().await;
    pair.nas1.ok(&["task", "run", "documents"]);
    let rows = pair.send_rows();
    let bytes = |task: &str| {
        let row = rows
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["task"] == task)
            .expect("row");
        assert_eq!(row["stream_version"], 2, "{row}");
        u64_of(&row["stream_bytes"])
    };
    let len = text.len() as u64;
    assert!(
        bytes("photos") < len / 3,
        "compressed extents were inflated: {}",
        bytes("photos")
    );
    assert!(
        bytes("documents") > len,
        "extents crossed compressed: {}",
        bytes("documents")
    );
    assert_same_tree(&pair.share, &pair.latest());
}
