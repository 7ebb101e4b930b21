//! `ferry init --repair` with the real binary: a lost or empty state database,
//! or a deleted key, is rebuilt without ever changing the appliance's uuid.

use crate::common::ferry::Node;
use crate::common::process::RECEIVER;

/// (uuid, fingerprint) as `ferry id` prints them.
fn id(node: &Node) -> (String, String) {
    let id = node.json(&["id", "--json"]);
    (
        id["uuid"].as_str().expect("uuid").to_string(),
        id["fingerprint"].as_str().expect("fingerprint").to_string(),
    )
}

fn broken(node: &Node, file: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(&node.state)
        .expect("state dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{file}.broken-")))
        })
        .collect()
}

/// Pins: with a zero-byte state.db the receiver said "run `ferry init`", init
/// refused, and `ferry status` silently migrated the empty file and exited 0.
#[test]
fn an_empty_state_database_gets_one_advice_and_repair_keeps_the_identity() {
    let node = Node::init("nas2");
    let before = id(&node);
    std::fs::write(node.state.join("state.db"), b"").expect("truncate");
    let advice = format!(
        "ferry: the state database {}/state.db is empty (0 bytes); `ferry init --repair` \
         rebuilds it, keeping this appliance's uuid, key and certificate",
        node.state.display()
    );
    for args in [
        &["status"][..],
        &["receiver"],
        &["sender"],
        &["init"],
        &["id"],
    ] {
        assert_eq!(node.refused(2, args), advice, "{args:?}");
    }
    assert_eq!(
        std::fs::metadata(node.state.join("state.db"))
            .expect("still there")
            .len(),
        0,
        "nothing migrated the empty file"
    );

    let out = node.ok(&["init", "--repair"]);
    assert!(
        out.contains(&format!(
            "rebuilt the state database of nas2 ({})",
            before.0
        )),
        "{out}"
    );
    assert!(out.contains("ferry replica adopt"), "{out}");
    assert_eq!(id(&node), before, "same uuid, same key and certificate");
    let aside = broken(&node, "state.db");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::metadata(&aside[0]).expect("aside").len(), 0);
    let again = node.ok(&["init", "--repair"]);
    assert!(again.starts_with("nothing to repair"), "{again}");
}

/// Pins: with key.pem deleted, every command said "run `ferry init`", and
/// init said "already initialized, nothing changed".
#[test]
fn a_deleted_key_is_made_anew_with_the_same_uuid_and_the_database_kept() {
    let node = Node::init("nas1");
    node.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "192.0.2.2",
        "--fingerprint",
        &format!("SHA256:{}", "ab".repeat(32)),
    ]);
    let (uuid, old_fp) = id(&node);
    std::fs::remove_file(node.state.join("key.pem")).expect("delete key.pem");
    let err = node.refused(2, &["init"]);
    assert!(err.contains("`ferry init --repair`"), "{err}");

    let out = node.ok(&["init", "--repair"]);
    let (same, new_fp) = id(&node);
    assert_eq!(same, uuid);
    assert_ne!(new_fp, old_fp, "a new key is a new fingerprint");
    assert!(
        out.contains(&format!(
            "On each peer, run: ferry appliance set nas1 --fingerprint {new_fp}"
        )),
        "{out}"
    );
    assert_eq!(
        broken(&node, "cert.pem").len(),
        1,
        "the orphaned certificate is kept aside"
    );
    assert_eq!(
        node.json(&["appliance", "list", "--json"])[0]["name"],
        "nas2",
        "the database was kept"
    );
}

/// A state.db that is gone entirely is rebuilt from the certificate: the uuid
/// from its SAN, the name from its common name.
#[test]
fn a_lost_database_is_rebuilt_from_the_certificate() {
    let node = Node::init("nas2");
    let before = id(&node);
    std::fs::remove_file(node.state.join("state.db")).expect("lose state.db");
    let err = node.refused(2, &["status"]);
    assert!(err.contains("no state database (lost?)"), "{err}");
    node.ok(&["init", "--repair"]);
    assert_eq!(id(&node), before);
    assert_eq!(node.json(&["id", "--json"])["name"], "nas2");
}

/// A repair never runs under a live daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_waits_for_the_daemons_to_stop() {
    let node = Node::init("nas2");
    let receiver = node.daemon(RECEIVER).await;
    std::fs::remove_file(node.state.join("key.pem")).expect("delete key.pem");
    let err = node.refused(2, &["init", "--repair"]);
    assert_eq!(
        err,
        format!(
            "ferry: a ferry receiver (pid {}) is running on {}; stop it before repairing its state",
            receiver.pid(),
            node.state.display()
        )
    );
    assert!(node.state.join("cert.pem").exists(), "nothing moved aside");
    assert!(receiver.stop().await.success());
    node.ok(&["init", "--repair"]);
}
