use super::*;
use tokio::io::{duplex, AsyncWriteExt, DuplexStream};

fn pair() -> (MetaConn<DuplexStream>, MetaConn<DuplexStream>) {
    let (a, b) = duplex(64 * 1024);
    (MetaConn::new(a), MetaConn::new(b))
}

fn every_variant() -> Vec<Meta> {
    let u = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    vec![
        Meta::Hello(Hello::new(u, "nas1")),
        Meta::Error {
            reason: "no".into(),
        },
        Meta::Inventory {
            share: "photos".into(),
            pool: "backup".into(),
        },
        Meta::InventoryReply {
            replicas: vec![Replica {
                name: "photos_t_20240101T000000Z".into(),
                received_uuid: u,
                received_at: at,
            }],
        },
        Meta::Begin {
            share: "photos".into(),
            snapshot: "photos_t_20240102T000000Z".into(),
            snapshot_uuid: u,
            parent: Some(Parent {
                name: "photos_t_20240101T000000Z".into(),
                uuid: u,
            }),
            pool: "backup".into(),
            keep: 7,
        },
        Meta::Begin {
            share: "s".into(),
            snapshot: "n".into(),
            snapshot_uuid: u,
            parent: None,
            pool: "p".into(),
            keep: 0,
        },
        Meta::Ready { session: u },
        Meta::Refused {
            reason: "busy".into(),
            busy: true,
        },
        Meta::Commit {
            stream_bytes: u64::MAX,
            blake3: "ab".repeat(32),
        },
        Meta::Received { received_uuid: u },
        Meta::Failed { reason: "x".into() },
        Meta::Abort { reason: "y".into() },
        Meta::Ping,
        Meta::Pong,
    ]
}

#[tokio::test]
async fn every_variant_round_trips() {
    let (mut a, mut b) = pair();
    for msg in every_variant() {
        a.send(&msg).await.unwrap();
        assert_eq!(b.recv().await.unwrap(), msg);
    }
}

#[test]
fn wire_names_are_stable() {
    let names: Vec<String> = every_variant().iter().map(Meta::kind).collect();
    let expected = [
        "hello",
        "error",
        "inventory",
        "inventory_reply",
        "begin",
        "begin",
        "ready",
        "refused",
        "commit",
        "received",
        "failed",
        "abort",
        "ping",
        "pong",
    ];
    assert_eq!(names, expected);
    let json = serde_json::to_string(&every_variant()[4]).unwrap();
    assert!(
        json.starts_with(r#"{"type":"begin","share":"photos""#),
        "{json}"
    );
    assert_eq!(
        serde_json::to_string(&Meta::Ping).unwrap(),
        r#"{"type":"ping"}"#
    );
    let hello = serde_json::to_value(&every_variant()[0]).unwrap();
    assert_eq!(hello["protocol"], "ferry/1");
}

#[tokio::test]
async fn handshake_succeeds() {
    let (mut a, mut b) = pair();
    let (ha, hb) = (
        Hello::new(Uuid::new_v4(), "nas1"),
        Hello::new(Uuid::new_v4(), "nas2"),
    );
    let (ra, rb) = tokio::join!(handshake(&mut a, ha.clone()), handshake(&mut b, hb.clone()));
    assert_eq!(ra.unwrap(), hb);
    assert_eq!(rb.unwrap(), ha);
}

#[tokio::test]
async fn version_mismatch_fails_both_sides_with_a_reason_naming_both() {
    let (mut a, mut b) = pair();
    let old = Hello::new(Uuid::new_v4(), "nas1");
    let new = Hello {
        protocol: "ferry/2".into(),
        ..Hello::new(Uuid::new_v4(), "nas2")
    };
    let (ra, rb) = tokio::join!(handshake(&mut a, old), handshake(&mut b, new));
    for (r, ours, theirs) in [(ra, "ferry/1", "ferry/2"), (rb, "ferry/2", "ferry/1")] {
        let err = r.unwrap_err();
        assert!(
            matches!(&err, Error::VersionMismatch { ours: o, theirs: t } if o == ours && t == theirs),
            "{err}"
        );
        assert!(!err.is_temporary());
        assert!(err.to_string().contains("ferry/1") && err.to_string().contains("ferry/2"));
    }
    for conn in [&mut a, &mut b] {
        match conn.recv().await.unwrap() {
            Meta::Error { reason } => {
                assert!(
                    reason.contains("ferry/1") && reason.contains("ferry/2"),
                    "{reason}"
                );
                assert!(
                    reason.contains("nas1") && reason.contains("nas2"),
                    "{reason}"
                );
            }
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_future_hello_of_another_shape_still_reads_as_a_version_mismatch() {
    let (mut a, mut b) = pair();
    let future = serde_json::json!({"type": "hello", "protocol": "ferry/9", "caps": [1]});
    b.send_as(&future).await.unwrap();
    let err = handshake(&mut a, Hello::new(Uuid::new_v4(), "nas1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VersionMismatch { .. }), "{err}");
}

#[tokio::test]
async fn non_hello_first_frame_is_a_protocol_error() {
    let (mut a, mut b) = pair();
    b.send(&Meta::Inventory {
        share: "s".into(),
        pool: "p".into(),
    })
    .await
    .unwrap();
    let err = handshake(&mut a, Hello::new(Uuid::new_v4(), "nas1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unexpected { expected: "hello", got } if got == "inventory"),
        "{err}"
    );
    assert!(!err.is_temporary());
    assert!(matches!(b.recv().await.unwrap(), Meta::Hello(_)));
    assert!(matches!(b.recv().await.unwrap(), Meta::Error { .. }));
}

#[tokio::test]
async fn plaintext_http_is_a_clean_error() {
    let (a, mut b) = duplex(64 * 1024);
    let mut a = MetaConn::new(a);
    b.write_all(b"GET / HTTP/1.1\r\nHost: nas1\r\n\r\n")
        .await
        .unwrap();
    let err = handshake(&mut a, Hello::new(Uuid::new_v4(), "nas1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::FrameTooLarge { .. } | Error::Decode(_)),
        "{err}"
    );
    assert!(!err.is_temporary());
}

#[tokio::test]
async fn json_garbage_first_frame_is_a_clean_error() {
    for body in [&b"{\"type\":"[..], b"[1,2,3]", b"\xff\xfe"] {
        let (mut a, b) = pair();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        let mut raw = b.into_inner();
        raw.write_all(&frame).await.unwrap();
        let err = handshake(&mut a, Hello::new(Uuid::new_v4(), "nas1"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Decode(_) | Error::Unexpected { .. }),
            "{err}"
        );
    }
}

#[test]
fn unexpected_replies_keep_the_peers_reason() {
    let busy = Error::unexpected(
        "ready",
        Meta::Refused {
            reason: "busy".into(),
            busy: true,
        },
    );
    assert!(busy.is_temporary());
    let bad = Error::unexpected(
        "ready",
        Meta::Refused {
            reason: "bad name".into(),
            busy: false,
        },
    );
    assert!(!bad.is_temporary() && bad.to_string().contains("bad name"));
    let other = Error::unexpected("received", Meta::Pong);
    assert_eq!(
        other.to_string(),
        "protocol violation: expected received, got pong"
    );
}
