//! Mixed versions: the predecessor release (hello `ferry/1` without a feature
//! list) replicates with this one both ways. Its side of a session is replayed
//! from frames recorded off that release (tests/fixtures/ferry1/), byte for byte
//! except the appliance uuid of a hello and session ids, which a live session
//! must change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::client;
use crate::common::daemon::{subvolumes, Pair};
use crate::common::pair;
use ferry::identity::{self, StaticPeers};
use ferry::store::Status;
use ferry::wire::ChunkReader;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ferry1")
        .join(name)
}

/// The recorded frame bodies of one side, in order, as the exact text recorded.
fn frames(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(name))
        .expect("fixture")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture frame is JSON")
}

fn kind(v: &Value) -> String {
    v["type"].as_str().unwrap_or("?").to_owned()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// `text` with the uuid `from` (as recorded) replaced by `to`: same length, so
/// the frame is otherwise the recorded bytes.
fn swap_uuid(text: &str, from: &str, to: Uuid) -> String {
    assert!(text.contains(from), "{from} not in {text}");
    text.replace(from, &to.hyphenated().to_string())
}

async fn send_raw<S: AsyncWrite + Unpin>(w: &mut S, body: &str) {
    let len = u32::try_from(body.len()).expect("small frame");
    w.write_all(&len.to_be_bytes()).await.expect("write");
    w.write_all(body.as_bytes()).await.expect("write");
    w.flush().await.expect("flush");
}

async fn recv_raw<S: AsyncRead + Unpin>(r: &mut S) -> Value {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.expect("frame length");
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut body).await.expect("frame body");
    serde_json::from_slice(&body).expect("JSON frame")
}

/// A recorded data connection with its session id replaced by `session`: the
/// hello frame re-framed, every chunk byte as recorded.
fn data_connection(name: &str, session: Uuid) -> Vec<u8> {
    let bytes = std::fs::read(fixture(name)).expect("fixture");
    let len = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let mut hello: Value = serde_json::from_slice(&bytes[4..4 + len]).expect("data hello");
    assert_eq!(
        keys(&hello),
        ["offset", "protocol", "session"].map(String::from).into()
    );
    hello["session"] = Value::String(session.to_string());
    let body = serde_json::to_vec(&hello).expect("encode");
    let mut out = u32::try_from(body.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&bytes[4 + len..]);
    out
}

/// What this receiver answers must read, to the predecessor's sender, exactly
/// as its own receiver's answers did: the same kind, the same keys. A hello may
/// add `features` and `version`, which the predecessor ignores.
fn assert_reads_like(got: &Value, recorded: &Value) {
    assert_eq!(kind(got), kind(recorded), "got {got}, recorded {recorded}");
    let mut extra: BTreeSet<String> = keys(got).difference(&keys(recorded)).cloned().collect();
    if kind(got) == "hello" {
        extra.remove("features");
        extra.remove("version");
    }
    assert!(
        extra.is_empty(),
        "keys the predecessor never sent: {extra:?} in {got}"
    );
    let missing: Vec<_> = keys(recorded).difference(&keys(got)).cloned().collect();
    assert!(
        missing.is_empty(),
        "keys the predecessor needs: {missing:?} in {got}"
    );
}

/// Pins: the predecessor's sender (its recorded frames: hello without features,
/// a full and an incremental send, a refused parent, an unknown pool, an abort,
/// a ping and a protocol violation) replicates into this receiver, which
/// answers in frames the predecessor reads.
#[tokio::test]
async fn the_predecessors_sender_replicates_into_this_receiver() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let config = identity::client_config(&pair.peer.identity, pair.nas2_fp).expect("config");
    let (tls, _) = client::tls(config.clone(), d.meta).await;
    let mut meta = tls.expect("TLS");
    let sent = frames("meta-sender.jsonl");
    let replies = frames("meta-receiver.jsonl");
    let recorded_me = json(&sent[0])["appliance"]
        .as_str()
        .expect("uuid")
        .to_owned();
    // The session with a begin whose stream was not recorded is left out.
    let lying = |v: &Value| {
        (kind(v) == "begin" && v["snapshot"] == "photos_daily_20261101T030000Z")
            || (kind(v) == "commit" && v["blake3"] == "00".repeat(32))
    };
    let (skipped, kept): (Vec<usize>, Vec<usize>) =
        (0..sent.len()).partition(|&i| lying(&json(&sent[i])));
    assert_eq!(skipped.len(), 2, "the lying session is begin + commit");
    // And its answers: the `ready` and the `failed` of that session.
    let failed = replies
        .iter()
        .position(|r| kind(&json(r)) == "failed")
        .expect("a recorded failed");
    assert_eq!(kind(&json(&replies[failed - 1])), "ready");
    let mut answers = replies
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != failed && *i != failed - 1)
        .map(|(_, r)| json(r));
    let mut datas = ["data-full.bin", "data-incremental.bin"].into_iter();
    for i in kept {
        let body = match i {
            0 => swap_uuid(&sent[0], &recorded_me, pair.peer.uuid),
            _ => sent[i].clone(),
        };
        send_raw(&mut meta, &body).await;
        let v = json(&body);
        let expect_reply = !matches!(kind(&v).as_str(), "abort" | "commit" | "begin");
        match kind(&v).as_str() {
            "begin" => {
                let got = recv_raw(&mut meta).await;
                let recorded = answers.next().expect("recorded reply");
                assert_reads_like(&got, &recorded);
                if kind(&got) == "ready" {
                    let session: Uuid = got["session"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .expect("session");
                    let (tls, _) = client::tls(config.clone(), d.data).await;
                    let mut data = tls.expect("data TLS");
                    let name = datas.next().expect("a recorded stream per ready");
                    data.write_all(&data_connection(name, session))
                        .await
                        .expect("stream");
                    data.shutdown().await.expect("close");
                }
            }
            "commit" => {
                let got = recv_raw(&mut meta).await;
                assert_reads_like(&got, &answers.next().expect("recorded reply"));
                assert_eq!(kind(&got), "received", "{got}");
            }
            _ if expect_reply => {
                let got = recv_raw(&mut meta).await;
                assert_reads_like(&got, &answers.next().expect("recorded reply"));
            }
            _ => {}
        }
    }
    let rest: Vec<String> = answers.map(|v| kind(&v)).collect();
    assert!(rest.is_empty(), "unanswered: {rest:?}");

    let names = subvolumes(&pair.replica_dir()).await;
    assert_eq!(
        names,
        [
            "photos_daily_20261101T000000Z",
            "photos_daily_20261101T010000Z"
        ]
    );
    let rows = pair.history();
    let ok: Vec<_> = rows
        .iter()
        .filter(|r| r.attempt.status == Status::Succeeded)
        .collect();
    assert_eq!(ok.len(), 2, "{rows:?}");
    d.stop().await;
}

/// The predecessor's receiver, replayed: its recorded answers, with the
/// session's own values put in. Every frame this sender sends must be one the
/// predecessor decodes: a kind it knows and at least the keys it requires.
pub(crate) async fn old_receiver(
    meta_l: TcpListener,
    data_l: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    me: Uuid,
    holds: Option<(String, Uuid)>,
) -> anyhow::Result<Uuid> {
    let sent = frames("meta-sender.jsonl");
    let replies = frames("meta-receiver.jsonl");
    let recorded = |k: &str, from: &[String]| {
        from.iter()
            .map(|f| json(f))
            .find(|v| kind(v) == k)
            .unwrap_or_else(|| panic!("no recorded {k}"))
    };
    let check = |got: &Value| {
        let known = recorded(&kind(got), &sent);
        let missing: Vec<_> = keys(&known).difference(&keys(got)).cloned().collect();
        assert!(
            missing.is_empty(),
            "the predecessor needs {missing:?} in {got}"
        );
    };
    let (tcp, _) = meta_l.accept().await?;
    let mut meta = tls.accept(tcp).await?;
    let hello = recv_raw(&mut meta).await;
    check(&hello);
    assert_eq!(hello["protocol"], "ferry/1");
    let recorded_hello = &replies[0];
    let recorded_uuid = json(recorded_hello)["appliance"]
        .as_str()
        .expect("uuid")
        .to_owned();
    send_raw(&mut meta, &swap_uuid(recorded_hello, &recorded_uuid, me)).await;

    let inventory = recv_raw(&mut meta).await;
    assert_eq!(kind(&inventory), "inventory");
    check(&inventory);
    let reply = match &holds {
        None => replies[1].clone(),
        Some((name, uuid)) => {
            let mut v = json(&replies[4]);
            v["replicas"][0]["name"] = Value::String(name.clone());
            v["replicas"][0]["received_uuid"] = Value::String(uuid.to_string());
            serde_json::to_string(&v)?
        }
    };
    send_raw(&mut meta, &reply).await;

    let begin = recv_raw(&mut meta).await;
    assert_eq!(kind(&begin), "begin");
    check(&begin);
    match &holds {
        None => assert!(begin["parent"].is_null(), "{begin}"),
        Some((name, uuid)) => {
            assert_eq!(begin["parent"]["name"], name.as_str());
            assert_eq!(begin["parent"]["uuid"], uuid.to_string());
        }
    }
    let ready = json(&replies[2]);
    send_raw(&mut meta, &replies[2]).await;
    let (tcp, _) = data_l.accept().await?;
    let (data_hello, mut chunks) = ChunkReader::open(tls.accept(tcp).await?).await?;
    assert_eq!(
        data_hello.session.to_string(),
        ready["session"].as_str().unwrap_or("")
    );
    let mut stream = Vec::new();
    while let Some(chunk) = chunks.next_chunk().await? {
        stream.extend_from_slice(chunk);
    }
    let commit = recv_raw(&mut meta).await;
    assert_eq!(kind(&commit), "commit");
    check(&commit);
    assert_eq!(commit["stream_bytes"], stream.len() as u64);
    assert_eq!(commit["blake3"], blake3::hash(&stream).to_hex().as_str());
    let snapshot: Uuid = begin["snapshot_uuid"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("snapshot uuid");
    let received = json(&replies[3]);
    let recorded_received = received["received_uuid"].as_str().expect("uuid").to_owned();
    send_raw(
        &mut meta,
        &swap_uuid(&replies[3], &recorded_received, snapshot),
    )
    .await;
    // The sender closes; anything it says before is still a frame the predecessor knows.
    let mut rest = Vec::new();
    let _ = meta.read_to_end(&mut rest).await;
    Ok(snapshot)
}

/// Pins: this release's sender replicates to the predecessor's receiver (its
/// recorded answers), full and then incremental, in frames that receiver reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_sender_replicates_to_the_predecessors_receiver() {
    let mut pair = pair::Pair::new(&[]).await;
    std::fs::write(pair.share.join("a.txt"), b"alpha\n").expect("write");
    let (meta, data) = pair.stop_receiver().await;
    let nas2 = identity::load(&pair.nas2.state).expect("nas2 identity");
    let nas2_uuid = pair.nas2.store().identity().expect("id").expect("row").uuid;
    let trusted: StaticPeers = [identity::load(&pair.nas1.state).expect("nas1").fingerprint]
        .into_iter()
        .collect();
    let tls = tokio_rustls::TlsAcceptor::from(
        identity::server_config(&nas2, Arc::new(trusted)).expect("config"),
    );

    let mut held = None;
    for round in 0..2 {
        let meta_l = crate::common::rebind(meta).await;
        let data_l = crate::common::rebind(data).await;
        let old = tokio::spawn(old_receiver(
            meta_l,
            data_l,
            tls.clone(),
            nas2_uuid,
            held.clone(),
        ));
        std::fs::write(pair.share.join(format!("{round}.txt")), b"more\n").expect("write");
        pair.run_ok().await;
        let confirmed = old.await.expect("join").expect("the old receiver's script");
        let rows = pair.send_rows();
        let row = &rows[0];
        assert_eq!(row["status"], "succeeded", "{row}");
        assert_eq!(row["kind"], if round == 0 { "full" } else { "incremental" });
        assert_eq!(row["received_uuid"], confirmed.to_string());
        held = Some((
            row["snapshot"].as_str().expect("name").to_owned(),
            confirmed,
        ));
    }
}
