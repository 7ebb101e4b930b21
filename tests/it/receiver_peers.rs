//! The receiver against peers that misbehave before or at authentication: a flood
//! of silent connections, a trusted appliance claiming another's uuid.

use std::time::{Duration, Instant};

use crate::common::client::{self};
use crate::common::daemon::{wait_for_log, Pair};
use tokio::io::AsyncReadExt;

/// Pins: every accepted connection got its own TLS handshake task for up to
/// `handshake_timeout`, with no cap, so unauthenticated connections could pile
/// up without bound. Over `max_handshakes` they are dropped at once, and a real
/// client gets through once the flood's handshakes time out.
#[tokio::test]
async fn connections_over_the_handshake_cap_are_dropped_and_real_clients_still_succeed() {
    let pair = Pair::new();
    let d = pair
        .start(|c| {
            c.max_handshakes = 2;
            c.handshake_timeout = Duration::from_secs(5);
        })
        .await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(client::tcp(d.meta).await.0);
    }
    // The cap is full once the daemon holds both handshakes: a third connection
    // to the same port is then dropped, and says so.
    let (probe, probe_addr) = client::tcp(d.meta).await;
    wait_for_log(&["dropped connection", &format!("peer={probe_addr}")]).await;
    drop(probe);
    let started = Instant::now();
    let (mut over, addr) = client::tcp(d.data).await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), over.read_to_end(&mut sink)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a connection over the cap was kept for {:?}",
        started.elapsed()
    );
    wait_for_log(&["dropped connection", &format!("peer={addr}")]).await;

    for mut s in silent {
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut sink)).await;
    }
    pair.assert_serving(&d).await;
    d.stop().await;
}

/// Pins: the peer's uuid was bound from its hello at first contact, so any
/// trusted appliance could claim another's (still unbound) uuid and later read
/// and write that appliance's replicas. The uuid comes from the certificate.
#[tokio::test]
async fn a_hello_claiming_another_uuid_than_the_certificate_is_refused() {
    let pair = Pair::new();
    let d = pair.start(|_| {}).await;
    let impostor = client::Peer {
        identity: ferry::identity::load(&pair.nas1.state).expect("identity"),
        uuid: uuid::Uuid::new_v4(),
        name: "nas1".into(),
    };
    let reason = match client::Client::connect(&impostor, pair.nas2_fp, d.meta, d.data).await {
        Err((_, e)) => e,
        Ok(mut c) => match c.inventory("photos", "backup").await {
            Err(ferry::wire::Error::Peer { reason }) => reason,
            other => panic!("expected the session to be refused, got {other:?}"),
        },
    };
    assert!(
        reason.contains("its certificate names") && reason.contains(&pair.peer.uuid.to_string()),
        "{reason}"
    );
    assert_eq!(pair.bound_uuid(), None, "the claimed uuid was bound");

    let mut c = pair.client(&d).await;
    assert!(c
        .inventory("photos", "backup")
        .await
        .expect("inv")
        .is_empty());
    assert_eq!(pair.bound_uuid(), Some(pair.peer.uuid));
    drop(c);
    d.stop().await;
}
