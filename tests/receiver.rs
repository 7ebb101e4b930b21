//! The receiver against real loop-backed pools and real TLS on 127.0.0.1: verified
//! receives, refusals that write nothing, failures that leave nothing, recovery.

mod common;

use std::path::Path;
use std::time::Duration;

use common::assert_same_tree;
use common::client::{self, Client, Peer};
use common::daemon::{wait_for_log, Pair};
use common::ferry::Node;
use ferry::btrfs;
use ferry::identity::{self, Fingerprint};
use ferry::receiver;
use ferry::store::{ReceiveFilter, ReceiveRow, Status};
use ferry::wire::{self, Meta, MetaConn};

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

#[tokio::test]
async fn unknown_clients_and_wrong_pins_fail_the_handshake_and_write_nothing() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let before = pair.target.dump();
    let stranger = Node::init("stranger");
    let stranger_peer = Peer::load(&stranger.state);

    let Err((addr, why)) = Client::connect(&stranger_peer, pair.target_fp, d.meta, d.data).await
    else {
        panic!("an unknown client got a session");
    };
    eprintln!("stranger refused: {why}");
    let line = wait_for_log(&["refused connection", &format!("peer={addr}")]).await;
    assert!(line.contains(&stranger.fingerprint()), "{line}");

    // Unknown on the data port too: nothing it sends is read.
    let config = identity::client_config(&stranger_peer.identity, pair.target_fp).expect("cfg");
    let (tls, addr) = client::tls(config, d.data).await;
    if let Ok(mut tls) = tls {
        let hello = wire::DataHello::new(uuid::Uuid::new_v4(), 0);
        let _ = wire::write_frame(&mut tls, &hello).await;
    }
    wait_for_log(&[
        "refused connection",
        &format!("peer={addr}"),
        "port=\"data\"",
    ])
    .await;

    // A known client pinned to another server's fingerprint gives up itself.
    let wrong: Fingerprint = stranger.fingerprint().parse().expect("fp");
    let Err((addr, why)) = Client::connect(&pair.peer, wrong, d.meta, d.data).await else {
        panic!("a client pinned to another fingerprint got a session");
    };
    assert!(why.contains("pinned to"), "{why}");
    wait_for_log(&["refused connection", &format!("peer={addr}")]).await;

    assert_eq!(
        pair.target.dump(),
        before,
        "a refused peer changed the database"
    );
    assert!(!pair.dst.mount.join(".ferry").exists());

    // The receiver is still serving.
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    assert_eq!(
        c.replicate("photos", "backup", &s1, None, 1)
            .await
            .expect("s1"),
        s1.uuid
    );
    drop(c);
    d.stop().await;
}

fn begin(share: &str, snapshot: &str, parent: Option<&str>, pool: &str) -> Meta {
    Meta::Begin {
        share: share.into(),
        snapshot: snapshot.into(),
        snapshot_uuid: uuid::Uuid::new_v4(),
        parent: parent.map(|p| wire::Parent {
            name: p.into(),
            uuid: uuid::Uuid::new_v4(),
        }),
        pool: pool.into(),
        keep: 1,
    }
}

#[tokio::test]
async fn unregistered_pools_and_bad_names_are_refused_before_touching_a_path() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    let expected =
        "pool nosuch is not exposed on nas2; add it there with `ferry pool add nosuch PATH`";
    match c.begin("photos", "nosuch", &s1, None, 1).await {
        Err(wire::Error::Refused {
            reason,
            busy: false,
        }) => assert_eq!(reason, expected),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match c.inventory("photos", "nosuch").await {
        Err(wire::Error::Refused { reason, .. }) => assert_eq!(reason, expected),
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(c);

    // The real session handler over an in-memory pipe, so any bytes can be names.
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let nas1 = pair
        .target
        .store()
        .appliance("nas1")
        .expect("q")
        .expect("row");
    let shared = d.shared.clone();
    let server = tokio::spawn(async move {
        receiver::serve_meta(&shared, theirs, nas1, "127.0.0.1:9".parse().expect("addr")).await
    });
    let mut conn = MetaConn::new(ours);
    wire::handshake(&mut conn, pair.peer.hello())
        .await
        .expect("hellos");
    let long = "a".repeat(300);
    let cases = [
        (begin("a/b", "s", None, "backup"), "contains '/'"),
        (begin("..", "s", None, "backup"), "contains '..'"),
        (begin("photos", "../../etc", None, "backup"), "contains '/'"),
        (begin("photos", "a..b", None, "backup"), "contains '..'"),
        (begin("photos", "s\0x", None, "backup"), "NUL"),
        (begin(".hidden", "s", None, "backup"), "starts with '.'"),
        (begin("photos", ".s", None, "backup"), "starts with '.'"),
        (begin("photos", "s\nx", None, "backup"), "control character"),
        (begin("photos", &long, None, "backup"), "longer than"),
        (begin(&long, "s", None, "backup"), "longer than"),
        (
            begin("photos", "s", Some("../x"), "backup"),
            "parent snapshot name",
        ),
        (begin("photos", "s", None, "../backup"), "pool name"),
        (begin("photos", "latest", None, "backup"), "reserved"),
        (
            Meta::Inventory {
                share: "../..".into(),
                pool: "backup".into(),
            },
            "contains '/'",
        ),
    ];
    for (msg, rule) in cases {
        conn.send(&msg).await.expect("send");
        match conn.recv().await.expect("reply") {
            Meta::Refused { reason, busy } => {
                assert!(!busy);
                assert!(reason.contains(rule), "{msg:?}: {reason}");
            }
            other => panic!("{msg:?}: expected a refusal, got {other:?}"),
        }
    }
    drop(conn);
    server.await.expect("session ends when the pipe closes");
    let top: Vec<_> = std::fs::read_dir(&pair.dst.mount)
        .expect("read pool")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(top.is_empty(), "refusals created {top:?} in the pool");
    assert!(history(&pair).is_empty());
    d.stop().await;
}

#[tokio::test]
async fn a_commit_that_lies_fails_and_leaves_nothing_visible() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    c.replicate("photos", "backup", &s1, None, 5)
        .await
        .expect("s1");
    let s2 = pair.snapshot("s2").await;

    let zeros = "0".repeat(64);
    let e = c
        .replicate_with("photos", "backup", &s2, Some(&s1), 5, |st| {
            st.blake3 = zeros.clone()
        })
        .await
        .expect_err("a wrong checksum must fail");
    let reason = peer_reason(e);
    assert!(reason.starts_with("checksum mismatch: got "), "{reason}");
    assert!(
        reason.ends_with(&format!("sender says {zeros}")),
        "{reason}"
    );
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s1"]);
    assert_eq!(latest(&pair), "s1");

    let e = c
        .replicate_with("photos", "backup", &s2, Some(&s1), 5, |st| st.end += 1)
        .await
        .expect_err("a wrong byte count must fail");
    let reason = peer_reason(e);
    assert!(
        reason.starts_with("stream ended after ") && reason.contains(" of "),
        "{reason}"
    );
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s1"]);
    assert_eq!(latest(&pair), "s1");
    let inv = c.inventory("photos", "backup").await.expect("inv");
    assert_eq!(
        inv.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["s1"]
    );

    let rows = history(&pair);
    let got: Vec<_> = rows.iter().map(|r| r.status).collect();
    assert_eq!(got, [Status::Failed, Status::Failed, Status::Succeeded]);
    assert!(rows[0]
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("stream ended after")));
    assert!(rows[1]
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("checksum mismatch")));

    // The same snapshot, honestly sent, is accepted.
    assert_eq!(
        c.replicate("photos", "backup", &s2, Some(&s1), 5)
            .await
            .expect("s2"),
        s2.uuid
    );
    assert_eq!(latest(&pair), "s2");
    drop(c);
    d.stop().await;
}

#[tokio::test]
async fn one_receive_per_share_and_a_dead_session_releases_its_lock() {
    let pair = Pair::new();
    let d = pair.start(|c| c.max_receives = 1).await;
    let s1 = pair.snapshot("s1").await;
    let mut a = pair.client(&d).await;
    a.begin("photos", "backup", &s1, None, 1)
        .await
        .expect("ready");

    let mut b = pair.client(&d).await;
    match b.begin("photos", "backup", &s1, None, 1).await {
        Err(wire::Error::Refused { reason, busy: true }) => {
            assert_eq!(
                reason,
                "a receive of share photos from nas1 is already running"
            )
        }
        other => panic!("expected busy, got {other:?}"),
    }
    let docs = pair.src.subvolume("docs");
    let d1 = btrfs::snapshot_readonly(&docs, &pair.snaps.join("d1"))
        .await
        .expect("snap");
    match b.begin("docs", "backup", &d1, None, 1).await {
        Err(wire::Error::Refused { reason, busy: true }) => {
            assert!(reason.contains("already running 1 receives"), "{reason}")
        }
        other => panic!("expected busy, got {other:?}"),
    }

    let gone = a.local;
    drop(a);
    wait_for_log(&["session ended", &format!("peer={gone}")]).await;
    let rows = history(&pair);
    assert_eq!(rows[0].status, Status::Failed);
    assert!(
        rows[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("connection lost after 0 bytes")),
        "{rows:?}"
    );
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());
    assert_eq!(
        b.replicate("photos", "backup", &s1, None, 1)
            .await
            .expect("s1"),
        s1.uuid
    );
    drop(b);
    d.stop().await;
}

#[tokio::test]
async fn a_data_connection_that_never_comes_times_out() {
    let pair = Pair::new();
    let d = pair
        .start(|c| c.data_timeout = Duration::from_secs(1))
        .await;
    let s1 = pair.snapshot("s1").await;
    let mut c = pair.client(&d).await;
    c.begin("photos", "backup", &s1, None, 1)
        .await
        .expect("ready");
    match c.conn.recv_alive().await.expect("verdict") {
        Meta::Failed { reason } => assert!(reason.contains("did not arrive within 1s"), "{reason}"),
        other => panic!("expected failed, got {other:?}"),
    }
    let rows = history(&pair);
    assert_eq!(rows[0].status, Status::Failed);
    assert!(rows[0]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("did not arrive")));
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());
    assert!(!pair.replica_dir().join("latest").exists());
    // The session goes on; the share is free again.
    assert_eq!(
        c.replicate("photos", "backup", &s1, None, 1)
            .await
            .expect("s1"),
        s1.uuid
    );
    drop(c);
    d.stop().await;
}
