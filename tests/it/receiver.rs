//! The receiver against real loop-backed pools and real TLS on 127.0.0.1: verified
//! receives, refusals that write nothing, failures that leave nothing, recovery.

use crate::common;
use std::time::Duration;

use crate::common::assert_same_tree;
use crate::common::client::{self, Client, Peer};
use crate::common::daemon::{subvolumes, wait_for_log, FirstReplica, Pair};
use crate::common::ferry::Node;
use ferry::btrfs;
use ferry::identity::{self, Fingerprint};
use ferry::receiver;
use ferry::store::Status;
use ferry::wire::{self, Meta, MetaConn};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

fn peer_reason(e: wire::Error) -> String {
    match e {
        wire::Error::Failed { reason, .. } => reason,
        other => panic!("expected the receiver's verdict, got {other}"),
    }
}

#[tokio::test]
async fn full_then_incremental_receive_is_verified_and_visible() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    assert_eq!(c.server().name, "nas2");
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

    assert_eq!(pair.latest(), "s2");
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

    let rows = pair.history();
    assert_eq!(rows.len(), 2);
    for (row, snap) in rows.iter().zip([&s2, &s1]) {
        assert_eq!(row.attempt.status, Status::Succeeded, "{row:?}");
        assert_eq!(row.attempt.received_uuid, Some(snap.uuid));
        assert_eq!(row.source, "nas1");
        assert!(
            row.attempt.stream_bytes > 0 && row.attempt.wire_bytes > 0,
            "{row:?}"
        );
    }
    assert_eq!(rows[0].attempt.parent.as_deref(), Some("s1"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(pair.dst.mount.join(".ferry"))
            .expect("stat")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    // The peer's uuid was bound at first contact.
    assert_eq!(pair.bound_uuid(), Some(pair.peer.uuid));
    drop(c);
    d.stop().await;
}

#[tokio::test]
async fn unknown_clients_and_wrong_pins_fail_the_handshake_and_write_nothing() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let before = pair.nas2.dump();
    let stranger = Node::init("stranger");
    let stranger_peer = Peer::load(&stranger.state);

    let Err((addr, why)) = Client::connect(&stranger_peer, pair.nas2_fp, d.meta, d.data).await
    else {
        panic!("an unknown client got a session");
    };
    eprintln!("stranger refused: {why}");
    let line = wait_for_log(&["refused connection", &format!("peer={addr}")]).await;
    assert!(line.contains(&stranger.fingerprint()), "{line}");

    // Unknown on the data port too: nothing it sends is read.
    let config = identity::client_config(&stranger_peer.identity, pair.nas2_fp).expect("cfg");
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
        pair.nas2.dump(),
        before,
        "a refused peer changed the database"
    );
    assert!(!pair.dst.mount.join(".ferry").exists());

    // The receiver is still serving.
    pair.assert_serving(&d).await;
    d.stop().await;
}

fn begin(share: &str, snapshot: &str, parent: Option<&str>, pool: &str) -> Meta {
    Meta::Begin(wire::Begin {
        share: share.into(),
        snapshot: snapshot.into(),
        snapshot_uuid: uuid::Uuid::new_v4(),
        parent: parent.map(|p| wire::Parent {
            name: p.into(),
            uuid: uuid::Uuid::new_v4(),
        }),
        pool: pool.into(),
        keep: 1,
        resume: false,
        preserve: None,
        zone: None,
        created: None,
        failback: false,
    })
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
            ..
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
        .nas2
        .store()
        .appliance("nas1")
        .expect("q")
        .expect("row");
    let shared = d.shared.clone();
    let uuid = pair.peer.uuid;
    let server = tokio::spawn(async move {
        let addr = "127.0.0.1:9".parse().expect("addr");
        receiver::serve_meta(&shared, theirs, nas1, uuid, addr).await
    });
    let mut conn = MetaConn::new(ours);
    wire::handshake(&mut conn, pair.peer.hello())
        .await
        .expect("hellos");
    let long = "a".repeat(300);
    let cases = [
        (begin("a/b", "s", None, "backup"), "contains '/'"),
        (begin("..", "s", None, "backup"), "starts with '.'"),
        (begin("photos", "../../etc", None, "backup"), "contains '/'"),
        (
            begin("photos", "a\u{7f}b", None, "backup"),
            "control character",
        ),
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
            Meta::Inventory(wire::Inventory {
                share: "../..".into(),
                pool: "backup".into(),
                ..Default::default()
            }),
            "contains '/'",
        ),
    ];
    for (msg, rule) in cases {
        conn.send(&msg).await.expect("send");
        match conn.recv().await.expect("reply") {
            Meta::Refused(wire::Refused { reason, busy, .. }) => {
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
    assert!(pair.history().is_empty());
    d.stop().await;
}

#[tokio::test]
async fn a_commit_that_lies_fails_and_leaves_nothing_visible() {
    let pair = Pair::new();
    let FirstReplica {
        daemon: d,
        client: mut c,
        s1,
    } = pair.first_replica().await;
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
    assert_eq!(pair.latest(), "s1");

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
    assert_eq!(pair.latest(), "s1");
    let inv = c.inventory("photos", "backup").await.expect("inv");
    assert_eq!(
        inv.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["s1"]
    );

    let rows = pair.history();
    let got: Vec<_> = rows.iter().map(|r| r.attempt.status).collect();
    assert_eq!(got, [Status::Failed, Status::Failed, Status::Succeeded]);
    assert!(rows[0]
        .attempt
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("stream ended after")));
    assert!(rows[1]
        .attempt
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
    assert_eq!(pair.latest(), "s2");
    drop(c);
    d.stop().await;
}

#[tokio::test]
async fn one_receive_per_share_and_a_dead_session_releases_its_lock() {
    let pair = Pair::new();
    let d = pair
        .start(|c| {
            c.max_receives = 1;
            c.slot_wait = Duration::from_millis(300);
        })
        .await;
    let s1 = pair.snapshot("s1").await;
    let mut a = pair.client(&d).await;
    a.begin("photos", "backup", &s1, None, 1)
        .await
        .expect("ready");

    let mut b = pair.client(&d).await;
    match b.begin("photos", "backup", &s1, None, 1).await {
        Err(wire::Error::Refused {
            reason, busy: true, ..
        }) => {
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
        Err(wire::Error::Refused {
            reason,
            busy: true,
            retry_after,
        }) => {
            assert!(
                reason
                    .contains("already running 1 receives, its limit, and none ended within 300ms"),
                "{reason}"
            );
            assert_eq!(retry_after, Some(Duration::from_secs(1)), "the hint");
        }
        other => panic!("expected busy, got {other:?}"),
    }

    let gone = a.local;
    drop(a);
    wait_for_log(&["session ended", &format!("peer={gone}")]).await;
    let rows = pair.history();
    assert_eq!(rows[0].attempt.status, Status::Failed);
    assert!(
        rows[0].attempt.error.as_deref().is_some_and(
            |e| e.starts_with("nas1 closed the connection after 0 bytes without a verdict")
        ),
        "{rows:?}"
    );
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());
    b.replicate_full(&s1).await;
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
    match c.conn().recv_alive().await.expect("verdict") {
        Meta::Failed(f) => assert!(
            f.reason.contains("did not arrive within 1s"),
            "{}",
            f.reason
        ),
        other => panic!("expected failed, got {other:?}"),
    }
    let rows = pair.history();
    assert_eq!(rows[0].attempt.status, Status::Failed);
    assert!(rows[0]
        .attempt
        .error
        .as_deref()
        .is_some_and(|e| e.contains("did not arrive")));
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());
    assert!(!pair.replica_dir().join("latest").exists());
    // The session goes on; the share is free again.
    c.replicate_full(&s1).await;
    drop(c);
    d.stop().await;
}

/// Waits until the receiver closes `stream` (EOF or reset), whatever it sent first.
async fn closed_by_receiver<S: AsyncRead + Unpin>(mut stream: S) {
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut sink))
        .await
        .expect("the receiver drops the connection")
        .map(drop)
        .unwrap_or(());
}

#[tokio::test]
async fn garbage_on_either_port_is_dropped_and_the_receiver_keeps_serving() {
    let pair = Pair::new();
    let d = pair
        .start(|c| c.handshake_timeout = Duration::from_secs(2))
        .await;
    let client_cfg = identity::client_config(&pair.peer.identity, pair.nas2_fp).expect("cfg");

    // Plaintext before TLS, on both ports.
    for port in [d.meta, d.data] {
        let (mut tcp, _) = client::tcp(port).await;
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: nas2\r\n\r\n")
            .await
            .expect("write");
        closed_by_receiver(tcp).await;
        let (mut tcp, _) = client::tcp(port).await;
        tcp.write_all(&[0xff; 4096]).await.expect("write");
        closed_by_receiver(tcp).await;
    }
    // Silence before TLS: dropped after the handshake timeout.
    let (tcp, addr) = client::tcp(d.meta).await;
    closed_by_receiver(tcp).await;
    wait_for_log(&[&format!("peer={addr}"), "no TLS handshake within"]).await;

    // After TLS on the meta port: an oversized frame instead of a hello ...
    let (tls, _) = client::tls(client_cfg.clone(), d.meta).await;
    let mut tls = tls.expect("tls");
    tls.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
    closed_by_receiver(tls).await;
    // ... and after the hellos: garbage, then an oversized frame.
    for bad in [&b"\0\0\0\x05junk!"[..], &u32::MAX.to_be_bytes()] {
        let (tls, _) = client::tls(client_cfg.clone(), d.meta).await;
        let mut conn = MetaConn::new(tls.expect("tls"));
        wire::handshake(&mut conn, pair.peer.hello())
            .await
            .expect("hellos");
        let mut tls = conn.into_inner();
        tls.write_all(bad).await.expect("write");
        tls.flush().await.expect("flush");
        let mut conn = MetaConn::new(tls);
        match conn.recv().await {
            Ok(Meta::Error(wire::Reason { reason })) => assert!(
                reason.contains("decode") || reason.contains("limit"),
                "{reason}"
            ),
            other => panic!("expected an error message, got {other:?}"),
        }
        closed_by_receiver(conn.into_inner()).await;
    }

    // After TLS on the data port: an oversized hello, garbage, an unknown session.
    let (tls, _) = client::tls(client_cfg.clone(), d.data).await;
    let mut tls = tls.expect("tls");
    tls.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
    closed_by_receiver(tls).await;
    let (tls, _) = client::tls(client_cfg.clone(), d.data).await;
    let mut tls = tls.expect("tls");
    tls.write_all(b"\0\0\0\x05junk!").await.expect("write");
    closed_by_receiver(tls).await;
    let (tls, _) = client::tls(client_cfg.clone(), d.data).await;
    let mut tls = tls.expect("tls");
    let unknown = uuid::Uuid::new_v4();
    wire::write_frame(&mut tls, &wire::DataHello::new(unknown, 0))
        .await
        .expect("hello");
    closed_by_receiver(tls).await;
    wait_for_log(&["dropped data connection", &unknown.to_string()]).await;

    assert!(pair.history().is_empty());
    pair.assert_serving(&d).await;
    d.stop().await;
}

#[tokio::test]
async fn startup_recovery_deletes_partials_fails_running_rows_and_keeps_replicas() {
    let pair = Pair::new();
    let (s1, _s2) = pair.two_replicas().await;

    // What a crash leaves: a writable partial, a running row; and a replica
    // someone deleted by hand, with `latest` still naming it.
    let dir = pair.replica_dir();
    common::run(
        "btrfs",
        &[
            "subvolume".as_ref(),
            "create".as_ref(),
            dir.join("s3").as_os_str(),
        ],
    );
    btrfs::delete(&dir.join("s2")).await.expect("delete s2");
    let running = pair
        .nas2
        .store()
        .begin_receive(&ferry::store::NewReceive {
            source: "nas1",
            source_uuid: Some(pair.peer.uuid),
            share: "photos",
            pool: "backup",
            snapshot: "s3",
            parent: Some("s2"),
            kind: ferry::store::Kind::Incremental,
        })
        .expect("running row");

    let d = pair.start(|_| {}).await;
    assert_eq!(subvolumes(&dir).await, ["s1"]);
    assert_eq!(pair.latest(), "s1");
    let rows = pair.history();
    let row = rows.iter().find(|r| r.id == running).expect("row");
    assert_eq!(row.attempt.status, Status::Failed);
    assert_eq!(
        row.attempt.error.as_deref(),
        Some("interrupted: the receiver stopped before this receive finished")
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.attempt.status == Status::Succeeded)
            .count(),
        2
    );
    let mut c = pair.client(&d).await;
    let inv = c.inventory("photos", "backup").await.expect("inv");
    assert_eq!(
        inv.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["s1"]
    );
    assert_same_tree(&s1.path, &dir.join("s1"));
    drop(c);
    d.stop().await;
}

#[tokio::test]
async fn retention_keeps_the_newest_replicas() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let mut parent = None;
    let mut snaps = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let snap = pair.snapshot(name).await;
        c.replicate("photos", "backup", &snap, parent.as_ref(), 2)
            .await
            .expect(name);
        parent = Some(snap.clone());
        snaps.push(snap);
    }
    // Retention runs after the reply; its log line says it is done.
    let pruned = |name: &str| format!("path={}", pair.replica_dir().join(name).display());
    wait_for_log(&["retention: deleted replica", &pruned("s1")]).await;
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s2", "s3"]);
    assert_eq!(pair.latest(), "s3");
    let inv = c.inventory("photos", "backup").await.expect("inv");
    let mut names: Vec<_> = inv.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["s2", "s3"]);
    // keep 0 still keeps the newest.
    let s4 = pair.snapshot("s4").await;
    c.replicate("photos", "backup", &s4, Some(&snaps[2]), 0)
        .await
        .expect("s4");
    for name in ["s2", "s3"] {
        wait_for_log(&["retention: deleted replica", &pruned(name)]).await;
    }
    assert_eq!(subvolumes(&pair.replica_dir()).await, ["s4"]);
    drop(c);
    d.stop().await;
}

#[tokio::test]
async fn shutdown_aborts_a_running_receive_and_leaves_nothing() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let mut c = pair.client(&d).await;
    let s1 = pair.snapshot("s1").await;
    let (_w, _) = c.all_but_the_end(&s1).await;
    wait_for_log(&["data connection attached"]).await;
    d.stop().await;
    match c.conn().recv().await {
        Ok(Meta::Abort(r)) => assert_eq!(r.reason, "interrupted by shutdown"),
        other => panic!("expected abort, got {other:?}"),
    }
    let rows = pair.history();
    assert_eq!(rows[0].attempt.status, Status::Failed);
    assert_eq!(
        rows[0].attempt.error.as_deref(),
        Some("interrupted by shutdown")
    );
    assert!(subvolumes(&pair.replica_dir()).await.is_empty());
}

#[test]
fn the_binary_prints_readiness_serves_and_exits_0_on_sigterm() {
    use std::io::BufRead;
    let pair = Pair::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "receiver",
            "--listen",
            "127.0.0.1",
            "--meta-port",
            "0",
            "--data-port",
            "0",
        ])
        .env("FERRY_STATE_DIR", &pair.nas2.state)
        .env_remove("FERRY_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ferry receiver");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("readiness line");
    let rest = line
        .trim()
        .strip_prefix("ferry receiver listening: meta ")
        .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
    let (meta, data) = rest.split_once(", data ").expect("two addresses");
    let (meta, data) = (
        meta.parse().expect("meta addr"),
        data.parse().expect("data addr"),
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut c = Client::connect(&pair.peer, pair.nas2_fp, meta, data)
            .await
            .unwrap_or_else(|(_, e)| panic!("{e}"));
        let s1 = pair.snapshot("s1").await;
        c.replicate_full(&s1).await;
    });

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the receiver exits within 5 s of SIGTERM")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("receive succeeded"), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
}
