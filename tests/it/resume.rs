//! Resumable transfers on the receiver: a receive whose connections broke is
//! parked (btrfs receive waiting, the partial invisible), a `begin` with
//! `resume` continues it from the prefix both sides prove by hash, and a parked
//! receive nobody resumes is discarded.

use std::time::Duration;

use crate::common::assert_same_tree;
use crate::common::client::{self, Client};
use crate::common::content::incompressible;
use crate::common::daemon::{subvolumes, wait_for_log, Pair};
use ferry::btrfs::{self, Subvolume};
use ferry::store::Status;
use ferry::wire::{Inventory, Prefix};
use tokio::io::AsyncReadExt;

/// The whole `btrfs send` stream of `snap`, in memory.
async fn send_stream(snap: &Subvolume) -> Vec<u8> {
    let mut send = btrfs::send(&snap.path, None).expect("btrfs send");
    let mut out = Vec::new();
    send.read_to_end(&mut out).await.expect("read the stream");
    out
}

/// Begins `snap` in full and sends the first `cut` bytes of `stream`, then
/// loses the data connection, then the meta connection, as a network that
/// goes away does. (The data connection goes first so that the receiver has
/// read all that was sent: a test of where the stream resumes needs to know.)
async fn cut_transfer(pair: &Pair, c: Client, snap: &Subvolume, stream: &[u8], cut: usize) {
    let mut c = c;
    let session = c
        .begin("photos", "backup", snap, None, 5)
        .await
        .expect("ready");
    let mut w = c.open_data(session).await;
    for piece in stream[..cut].chunks(1 << 20) {
        w.write_chunk(piece).await.expect("chunk");
    }
    drop(w);
    wait_for_log(&["receive parked", &format!("snapshot={}", snap.name)]).await;
    drop(c);
    let row = &pair.history()[0];
    assert_eq!(
        row.attempt.status,
        Status::Running,
        "a parked receive is not over"
    );
    assert!(row.parked_until.is_some(), "{row:?}");
    assert_eq!(row.attempt.stream_bytes, cut as u64);
}

/// Pins: a transfer cut mid-stream is parked, Inventory tells a resuming
/// sender of it, and a `begin` with `resume` continues from exactly the bytes
/// btrfs receive took; the replica equals the snapshot, and verification is
/// as strict as for a transfer sent in one go.
#[tokio::test]
async fn a_cut_transfer_is_parked_and_resumed_from_where_it_broke() {
    let pair = Pair::new();
    incompressible(&pair.share.join("big.bin"), 6 << 20);
    let d = pair.start(|_| {}).await;
    let s1 = pair.snapshot("cut-resumed").await;
    let stream = send_stream(&s1).await;
    let cut = (3 << 20) + 12_345;
    cut_transfer(&pair, pair.client(&d).await, &s1, &stream, cut).await;
    assert!(
        subvolumes(&pair.replica_dir()).await.contains(&s1.name),
        "the partial stays while parked"
    );

    let mut c = pair.client(&d).await;
    let inventory = c
        .wire
        .inventory(Inventory {
            share: "photos".into(),
            pool: "backup".into(),
            ..Default::default()
        })
        .await
        .expect("inventory");
    assert!(
        inventory.replicas.is_empty(),
        "a parked receive is not a replica"
    );
    let parked = inventory.parked.expect("the parked receive is reported");
    assert_eq!((&parked.snapshot, parked.offset), (&s1.name, cut as u64));

    let mut begin = client::begin("photos", "backup", &s1, None, 5);
    begin.resume = true;
    let ready = c.wire.begin(begin).await.expect("ready");
    let at = ready.resume.expect("ready says where to resume");
    let mut prefix = Prefix::new();
    prefix.update(&stream[..cut]).expect("prefix");
    assert_eq!(
        (at.offset, at.blake3.as_str()),
        (cut as u64, prefix.digest().as_str())
    );
    let mut w = c.open_data_at(ready.session, prefix).await;
    for piece in stream[cut..].chunks(1 << 20) {
        w.write_chunk(piece).await.expect("chunk");
    }
    let sent = w.finish().await.expect("end");
    assert_eq!(
        sent.raw_bytes(),
        (stream.len() - cut) as u64,
        "only the rest crossed"
    );
    let got = c
        .commit(sent.hashed_bytes(), &sent.blake3)
        .await
        .expect("received");
    assert_eq!(got, s1.uuid);
    assert_same_tree(&s1.path, &pair.replica_dir().join(&s1.name));

    let rows = pair.history();
    assert_eq!(rows[0].attempt.status, Status::Succeeded);
    assert_eq!(rows[0].attempt.resumed_from, cut as u64);
    assert_eq!(rows[1].attempt.status, Status::Failed);
    let why = rows[1].attempt.error.as_deref().unwrap_or_default();
    assert!(
        why.contains(&format!("resumed by receive {}", rows[0].id)),
        "{why}"
    );
    assert!(rows[1].parked_until.is_none());
    drop(c);
    d.stop().await;
}

/// Pins: a parked receive is discarded, its partial deleted and its row
/// failed with the reason, when the sender begins another snapshot, and when
/// nobody resumes it within the window.
#[tokio::test]
async fn a_parked_receive_nobody_resumes_is_discarded() {
    let pair = Pair::new();
    incompressible(&pair.share.join("big.bin"), 3 << 20);
    let d = pair
        .start(|c| c.resume_window = Duration::from_secs(2))
        .await;
    let s1 = pair.snapshot("cut-moved-on").await;
    let stream = send_stream(&s1).await;
    cut_transfer(&pair, pair.client(&d).await, &s1, &stream, 1 << 20).await;

    // Another snapshot: the sender moved on.
    let s2 = pair.snapshot("s2").await;
    let mut c = pair.client(&d).await;
    c.replicate_full(&s2).await;
    let rows = pair.history();
    let parked = rows
        .iter()
        .find(|r| r.attempt.snapshot == s1.name)
        .expect("the cut row");
    assert_eq!(parked.attempt.status, Status::Failed);
    let why = parked.attempt.error.as_deref().unwrap_or_default();
    assert!(why.contains("the sender began another snapshot"), "{why}");
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s2"]);
    drop(c);

    // The window ends: discarded by the receiver's own sweep.
    let s3 = pair.snapshot("cut-expired").await;
    let stream = send_stream(&s3).await;
    cut_transfer(&pair, pair.client(&d).await, &s3, &stream, 1 << 20).await;
    wait_for_log(&[
        "no resume came within the resume window",
        "snapshot=cut-expired",
    ])
    .await;
    let row = &pair.history()[0];
    assert_eq!(row.attempt.snapshot, s3.name);
    assert_eq!(row.attempt.status, Status::Failed);
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s2"]);
    // And the share is free again.
    let mut c = pair.client(&d).await;
    let s4 = pair.snapshot("s4").await;
    c.replicate("photos", "backup", &s4, Some(&s2), 5)
        .await
        .expect("the share is free");
    drop(c);
    d.stop().await;
}

/// Pins: a resume whose regenerated stream differs from the receiver's prefix
/// is refused by the sender (the hash check), and the abort that follows
/// discards the parked receive: the next begin starts over, from 0.
#[tokio::test]
async fn a_resume_that_would_not_continue_the_same_stream_starts_over() {
    let pair = Pair::new();
    incompressible(&pair.share.join("big.bin"), 3 << 20);
    let d = pair.start(|_| {}).await;
    let s1 = pair.snapshot("cut-mismatch").await;
    let stream = send_stream(&s1).await;
    let cut = 1 << 20;
    cut_transfer(&pair, pair.client(&d).await, &s1, &stream, cut).await;

    let mut c = pair.client(&d).await;
    let mut begin = client::begin("photos", "backup", &s1, None, 5);
    begin.resume = true;
    let ready = c.wire.begin(begin).await.expect("ready");
    let at = ready.resume.expect("a resume is offered");
    let mut other = Prefix::new();
    other.update(&vec![0u8; cut]).expect("prefix");
    assert_ne!(
        other.digest(),
        at.blake3,
        "a different prefix hashes differently"
    );
    c.wire.abort("resume: the regenerated stream differs").await;
    wait_for_log(&[
        "nas1 aborted the transfer",
        "resume: the regenerated stream differs",
    ])
    .await;
    assert!(!subvolumes(&pair.replica_dir()).await.contains(&s1.name));
    let got = c
        .replicate("photos", "backup", &s1, None, 5)
        .await
        .expect("a fresh transfer");
    assert_eq!(got, s1.uuid);
    assert_eq!(pair.history()[0].attempt.resumed_from, 0);
    drop(c);
    d.stop().await;
}

/// Pins: a run whose connections are all cut mid-stream reconnects by itself
/// and resumes where the receiver's copy ends: the run succeeds, the receiver
/// holds one replica equal to the snapshot, its rows show the parked attempt
/// and the resumed one, and the bytes on the wire are about one stream's worth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_connections_are_cut_reconnects_and_resumes() {
    use crate::common::pair;
    use crate::common::proxy::Proxy;
    use ferry::sender::{self, Progress};
    use tokio_util::sync::CancellationToken;

    let pair = pair::Pair::new(&["--compress", "0"]).await;
    incompressible(&pair.share.join("big.bin"), 96 << 20);
    let receiver = pair.receiver.as_ref().expect("receiver");
    let (meta, data) = (
        Proxy::start(receiver.meta).await,
        Proxy::start(receiver.data).await,
    );
    let (mp, dp) = (meta.addr.port().to_string(), data.addr.port().to_string());
    pair.nas1.ok(&[
        "appliance",
        "set",
        "nas2",
        "--meta-port",
        &mp,
        "--data-port",
        &dp,
    ]);

    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let state = pair.nas1.state.clone();
    let run = tokio::spawn(async move {
        sender::run_task(
            &state,
            "photos",
            Some(tx),
            CancellationToken::new(),
            sender::RunOptions::default(),
        )
        .await
    });
    while rx.borrow().stream_bytes < 32 << 20 {
        rx.changed().await.expect("the run reports progress");
    }
    let cut_at = rx.borrow().stream_bytes;
    meta.cut();
    data.cut();
    let outcome = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the run ends within two minutes")
        .expect("join")
        .expect("the run resumed and succeeded");
    let sender::Outcome::Sent(outcome) = outcome else {
        panic!("the run sent nothing: {outcome:?}");
    };
    assert_eq!(outcome.resumed_from, 0, "this run's stream started at 0");
    assert_same_tree(&pair.share, &pair.latest());
    let rows = pair.receive_rows();
    let (done, parked) = (&rows[0], &rows[1]);
    assert_eq!(done["status"], "succeeded", "{rows}");
    let resumed_from = done["resumed_from"].as_u64().expect("resumed_from");
    assert!(resumed_from > 0 && resumed_from <= cut_at, "{done}");
    assert_eq!(parked["status"], "failed", "{parked}");
    // One stream's worth on the wire, plus what the cut lost in flight (the
    // socket buffers on the way, a few MiB) and TLS framing.
    let stream = outcome.stream_bytes;
    let wire = data.upstream_bytes();
    let lost = cut_at - resumed_from;
    assert!(
        wire <= stream + stream / 20 + lost + (8 << 20),
        "wire {wire} for a {stream}-byte stream cut at {cut_at}, resumed from {resumed_from}"
    );
    let sent = pair.send_rows();
    assert_eq!(sent[0]["status"], "succeeded", "{sent}");
}

/// Pins: discarding a parked receive read the replicas it must keep with
/// `unwrap_or_default`, so a failing read of that record made a recorded
/// replica that a user had made writable (which clears its received_uuid)
/// look like a partial, and deleted it. An unreadable record now deletes
/// nothing but the receive's own subvolume.
#[tokio::test]
async fn a_discard_that_cannot_read_the_replica_record_keeps_every_replica() {
    let pair = Pair::new();
    incompressible(&pair.share.join("big.bin"), 3 << 20);
    let d = pair
        .start(|c| c.resume_window = Duration::from_secs(2))
        .await;
    let s1 = pair.snapshot("kept-writable").await;
    let mut c = pair.client(&d).await;
    c.replicate_full(&s1).await;
    drop(c);
    let kept = pair.replica_dir().join("kept-writable");
    crate::common::run(
        "btrfs",
        &[
            "property".as_ref(),
            "set".as_ref(),
            "-f".as_ref(),
            kept.as_os_str(),
            "ro".as_ref(),
            "false".as_ref(),
        ],
    );
    let s2 = pair.snapshot("cut-unreadable-record").await;
    let stream = send_stream(&s2).await;
    cut_transfer(&pair, pair.client(&d).await, &s2, &stream, 1 << 20).await;

    // The replica record cannot be read while the window ends; the receive
    // history (which names `kept-writable` as received here) still can.
    pair.sql("ALTER TABLE replicas RENAME TO replicas_away");
    wait_for_log(&[
        "no resume came within the resume window",
        "snapshot=cut-unreadable-record",
    ])
    .await;
    pair.sql("ALTER TABLE replicas_away RENAME TO replicas");
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["kept-writable"]);
    let row = &pair.history()[0];
    assert_eq!(row.attempt.snapshot, s2.name);
    assert_eq!(row.attempt.status, Status::Failed);
    d.stop().await;
}
