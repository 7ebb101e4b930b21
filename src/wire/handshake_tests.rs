use super::*;
use crate::wire::message::{
    Base, Begin, Commit, Failed, Feature, Features, Inventory, InventoryReply, Parent, Prune,
    Pruned, Ready, Reason, Received, Refused, Replica, Withheld,
};
use chrono::DateTime;
use tokio::io::{duplex, AsyncWriteExt, DuplexStream};
use uuid::Uuid;

fn pair() -> (MetaConn<DuplexStream>, MetaConn<DuplexStream>) {
    let (a, b) = duplex(64 * 1024);
    (MetaConn::new(a), MetaConn::new(b))
}

fn hello(name: &str, features: &[Feature]) -> Hello {
    Hello::new(
        Uuid::new_v4(),
        name,
        &Features::new(features.iter().copied()),
    )
}

fn every_variant() -> Vec<Meta> {
    let u = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    vec![
        Meta::Hello(hello("nas1", &[Feature::SendStreamV2])),
        Meta::Error(Reason::new("no")),
        Meta::Inventory(Inventory {
            share: "photos".into(),
            pool: "backup".into(),
            bases: vec![u],
        }),
        Meta::InventoryReply(InventoryReply {
            replicas: vec![Replica {
                name: "photos_t_20240101T000000Z".into(),
                received_uuid: u,
                received_at: at,
                created: Some(at),
            }],
            parked: None,
            max_replicas: Some(250),
            withheld: vec![Withheld {
                name: "photos_t_20231231T000000Z".into(),
                received_uuid: u,
                reason: "changed after it was received".into(),
            }],
            bases: vec![Base {
                name: "photos_t_20231230T000000Z".into(),
                uuid: u,
                why: "its own snapshot".into(),
            }],
            bases_withheld: vec![Withheld {
                name: String::new(),
                received_uuid: u,
                reason: "deleted".into(),
            }],
        }),
        Meta::Begin(Begin {
            share: "photos".into(),
            snapshot: "photos_t_20240102T000000Z".into(),
            snapshot_uuid: u,
            parent: Some(Parent {
                name: "photos_t_20240101T000000Z".into(),
                uuid: u,
            }),
            pool: "backup".into(),
            keep: 7,
            resume: false,
            preserve: Some("24h 7d".into()),
            zone: Some("Europe/Berlin".into()),
            created: Some(at),
            failback: true,
        }),
        Meta::Ready(Ready {
            session: u,
            resume: None,
        }),
        Meta::Refused(Refused {
            reason: "busy".into(),
            busy: true,
            retry_after: None,
        }),
        Meta::Commit(Commit {
            stream_bytes: u64::MAX,
            blake3: "ab".repeat(32),
        }),
        Meta::Received(Received { received_uuid: u }),
        Meta::Failed(Failed {
            reason: "x".into(),
            permanent: true,
        }),
        Meta::Prune(Prune {
            share: "photos".into(),
            pool: "backup".into(),
            keep: 5,
            preserve: Some("24h".into()),
            zone: Some("UTC".into()),
        }),
        Meta::Pruned(Pruned {
            deleted: vec!["photos_t_20240101T000000Z".into()],
        }),
        Meta::Abort(Reason::new("y")),
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
fn wire_names_are_stable_and_kind_agrees_with_serde() {
    let expected = [
        "hello",
        "error",
        "inventory",
        "inventory_reply",
        "begin",
        "ready",
        "refused",
        "commit",
        "received",
        "failed",
        "prune",
        "pruned",
        "abort",
        "ping",
        "pong",
    ];
    for (msg, name) in every_variant().iter().zip(expected) {
        assert_eq!(msg.kind(), name);
        let json = serde_json::to_value(msg).unwrap();
        assert_eq!(json["type"], name, "{json}");
    }
    // The payload's fields sit beside "type", as in the predecessor's frames.
    let begin = serde_json::to_string(&every_variant()[4]).unwrap();
    assert!(
        begin.starts_with(r#"{"type":"begin","share":"photos","snapshot":"#),
        "{begin}"
    );
    assert_eq!(
        serde_json::to_string(&Meta::Ping).unwrap(),
        r#"{"type":"ping"}"#
    );
}

#[test]
fn fields_that_say_nothing_new_are_left_out() {
    // A frame that carries nothing new is byte-identical to the predecessor's.
    let failed = Meta::Failed(Failed {
        reason: "x".into(),
        permanent: false,
    });
    assert_eq!(
        serde_json::to_string(&failed).unwrap(),
        r#"{"type":"failed","reason":"x"}"#
    );
    let busy = |retry_after| {
        serde_json::to_string(&Meta::Refused(Refused {
            reason: "x".into(),
            busy: true,
            retry_after,
        }))
        .unwrap()
    };
    assert_eq!(busy(None), r#"{"type":"refused","reason":"x","busy":true}"#);
    assert_eq!(
        busy(Some(45)),
        r#"{"type":"refused","reason":"x","busy":true,"retry_after":45}"#
    );
    // The predecessor's refusal, without the hint, still reads.
    let old: Meta = serde_json::from_str(r#"{"type":"refused","reason":"x","busy":true}"#).unwrap();
    assert_eq!(old.into_error("ready").retry_after(), None);
    let plain = serde_json::to_value(Meta::Hello(hello("nas1", &[]))).unwrap();
    assert!(plain.get("features").is_none(), "{plain}");
    let reply = Meta::InventoryReply(InventoryReply::default());
    assert_eq!(
        serde_json::to_string(&reply).unwrap(),
        r#"{"type":"inventory_reply","replicas":[]}"#
    );
    // And a predecessor's reply, without it, reads as none withheld.
    let old: Meta = serde_json::from_str(r#"{"type":"inventory_reply","replicas":[]}"#).unwrap();
    assert_eq!(old, reply);
    let offered =
        serde_json::to_value(Meta::Hello(hello("nas1", &[Feature::SendStreamV2]))).unwrap();
    assert_eq!(offered["features"], serde_json::json!(["send-stream-v2"]));
}

#[tokio::test]
async fn handshake_agrees_on_the_features_both_sides_list() {
    let (mut a, mut b) = pair();
    let (ha, hb) = (hello("nas1", &[Feature::SendStreamV2]), hello("nas2", &[]));
    let (ra, rb) = tokio::join!(handshake(&mut a, ha.clone()), handshake(&mut b, hb.clone()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.peer, rb.peer), (hb, ha));
    assert!(ra.features.is_empty() && rb.features.is_empty());

    let (mut a, mut b) = pair();
    let both = [Feature::SendStreamV2];
    let (ra, rb) = tokio::join!(
        handshake(&mut a, hello("nas1", &both)),
        handshake(&mut b, hello("nas2", &both))
    );
    assert!(ra.unwrap().features.has(Feature::SendStreamV2));
    assert!(rb.unwrap().features.has(Feature::SendStreamV2));
}

#[tokio::test]
async fn unknown_features_and_an_absent_list_read_as_none() {
    // A newer peer's feature we do not know is ignored; the predecessor's hello
    // has no list at all.
    for peer in [
        serde_json::json!({"type": "hello", "protocol": "ferry/1", "name": "nas9",
            "appliance": Uuid::new_v4(), "features": ["teleport", "send-stream-v2"]}),
        serde_json::json!({"type": "hello", "protocol": "ferry/1", "name": "nas0",
            "appliance": Uuid::new_v4()}),
    ] {
        let (mut a, mut b) = pair();
        let expect_v2 = peer["features"].is_array();
        b.send_as(&peer).await.unwrap();
        let agreed = handshake(&mut a, hello("nas1", &[Feature::SendStreamV2]))
            .await
            .unwrap();
        assert_eq!(agreed.features.has(Feature::SendStreamV2), expect_v2);
        assert_eq!(agreed.features.iter().count(), usize::from(expect_v2));
    }
}

#[tokio::test]
async fn version_mismatch_fails_both_sides_with_a_reason_naming_both() {
    let (mut a, mut b) = pair();
    let old = hello("nas1", &[]);
    let new = Hello {
        protocol: "ferry/2".into(),
        ..hello("nas2", &[])
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
            Meta::Error(Reason { reason }) => {
                for word in [
                    "ferry/1",
                    "ferry/2",
                    "nas1",
                    "nas2",
                    env!("CARGO_PKG_VERSION"),
                ] {
                    assert!(reason.contains(word), "{word} missing: {reason}");
                }
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
    let err = handshake(&mut a, hello("nas1", &[])).await.unwrap_err();
    assert!(matches!(err, Error::VersionMismatch { .. }), "{err}");
}

#[tokio::test]
async fn non_hello_first_frame_is_a_protocol_error() {
    let (mut a, mut b) = pair();
    b.send(&Meta::Inventory(Inventory {
        share: "s".into(),
        pool: "p".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    let err = handshake(&mut a, hello("nas1", &[])).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unexpected { expected: "hello", got } if got == "inventory"),
        "{err}"
    );
    assert!(!err.is_temporary());
    assert!(matches!(b.recv().await.unwrap(), Meta::Hello(_)));
    assert!(matches!(b.recv().await.unwrap(), Meta::Error(_)));
}

#[tokio::test]
async fn plaintext_http_is_a_clean_error() {
    let (a, mut b) = duplex(64 * 1024);
    let mut a = MetaConn::new(a);
    b.write_all(b"GET / HTTP/1.1\r\nHost: nas1\r\n\r\n")
        .await
        .unwrap();
    let err = handshake(&mut a, hello("nas1", &[])).await.unwrap_err();
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
        let err = handshake(&mut a, hello("nas1", &[])).await.unwrap_err();
        assert!(
            matches!(err, Error::Decode(_) | Error::Unexpected { .. }),
            "{err}"
        );
    }
}

#[test]
fn replies_that_are_not_the_awaited_one_keep_the_peers_words_and_class() {
    let refused = |busy| {
        Meta::Refused(Refused {
            reason: "r".into(),
            busy,
            retry_after: None,
        })
        .into_error("ready")
    };
    assert!(refused(true).is_temporary());
    assert!(!refused(false).is_temporary() && refused(false).to_string().contains('r'));
    let failed = |permanent| {
        Meta::Failed(Failed {
            reason: "disk full".into(),
            permanent,
        })
        .into_error("received")
    };
    assert!(
        failed(false).is_temporary(),
        "failed without `permanent` is temporary"
    );
    assert!(!failed(true).is_temporary());
    assert!(failed(true).to_string().contains("disk full"));
    let aborted = Meta::Abort(Reason::new("shutting down")).into_error("received");
    assert!(aborted.is_temporary());
    let error = Meta::Error(Reason::new("protocol violation")).into_error("received");
    assert!(!error.is_temporary());
    assert_eq!(
        Meta::Pong.into_error("received").to_string(),
        "protocol violation: expected received, got pong"
    );
}
