//! The real binary: `init`, `id`, `appliance` and `pool`, happy paths and every
//! bad input (exit 2, one line, nothing written).

use std::os::unix::fs::PermissionsExt;

use crate::common::ferry::Node;
use crate::common::{require_root_and_btrfs, TestPool};

const FP: &str = "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn init_creates_a_private_identity_and_a_second_init_changes_nothing() {
    let node = Node::uninitialized();
    let out = node.ok(&["init", "--name", "nas1"]);
    assert!(out.contains("fingerprint  SHA256:"), "{out}");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&node.state), 0o700);
    assert_eq!(mode(&node.state.join("key.pem")), 0o600);

    let id = node.json(&["id", "--json"]);
    assert_eq!(id["name"], "nas1");
    assert!(id["uuid"].as_str().is_some_and(|u| u.len() == 36), "{id}");
    let fp = node.fingerprint();
    assert!(fp.starts_with("SHA256:") && fp.len() == 7 + 64, "{fp}");
    let text = node.ok(&["id"]);
    assert!(
        text.contains(&fp) && text.contains("ferry appliance add nas1"),
        "{text}"
    );

    let key = std::fs::read(node.state.join("key.pem")).expect("key");
    let again = node.ok(&["init"]);
    assert!(
        again.contains("already initialized") && again.contains("nothing changed"),
        "{again}"
    );
    node.ok(&["init", "--name", "nas1"]);
    let err = node.refused(2, &["init", "--name", "other"]);
    assert!(err.contains("already initialized as nas1"), "{err}");
    assert_eq!(std::fs::read(node.state.join("key.pem")).expect("key"), key);
    assert_eq!(node.fingerprint(), fp);
}

#[test]
fn init_refuses_a_bad_name_and_creates_nothing() {
    let node = Node::uninitialized();
    for name in ["a/b", ".hidden", "", "with space"] {
        let out = node.run(&["init", "--name", name]);
        assert_eq!(out.status.code(), Some(2), "{name:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("appliance name"), "{err}");
        assert!(!node.state.exists(), "{name:?} created the state dir");
    }
}

#[test]
fn commands_before_init_say_to_run_init() {
    let node = Node::uninitialized();
    for args in [
        &["id"][..],
        &["appliance", "list"],
        &["pool", "list"],
        &["task", "list"],
        &["history", "send"],
    ] {
        let err = node.refused(2, args);
        assert!(err.contains("run `ferry init`"), "{args:?}: {err}");
        assert!(!node.state.exists());
    }
}

#[test]
fn unknown_commands_and_flags_are_one_line_usage_errors() {
    let node = Node::init("nas1");
    for args in [
        &["frobnicate"][..],
        &["task", "explode"],
        &["appliance", "add"],
        &["history", "send", "--limit", "0"],
        &["history", "send", "--limit", "many"],
    ] {
        let err = node.refused(2, args);
        assert!(err.contains("--help"), "{args:?}: {err}");
    }
    assert!(node.ok(&["--help"]).contains("appliance"));
}

#[test]
fn appliances_add_list_remove() {
    let node = Node::init("nas1");
    let out = node.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "192.0.2.2",
        "--fingerprint",
        FP,
    ]);
    assert!(out.contains("added appliance nas2"), "{out}");
    // Fingerprints are normalized: colons and upper case are accepted.
    let upper = format!(
        "sha256:{}",
        "AB".repeat(32)
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(":")
    );
    node.ok(&[
        "appliance",
        "add",
        "nas3",
        "--address",
        "nas3.example.org",
        "--fingerprint",
        &upper,
        "--meta-port",
        "20003",
        "--data-port",
        "20002",
    ]);
    let list = node.json(&["appliance", "list", "--json"]);
    let names: Vec<_> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, ["nas2", "nas3"]);
    assert_eq!(
        list[1]["fingerprint"],
        format!("SHA256:{}", "ab".repeat(32))
    );
    assert_eq!(list[1]["meta_port"], 20003);
    assert_eq!(list[1]["data_port"], 20002);
    assert_eq!(list[0]["meta_port"], 10003);
    assert_eq!(list[0]["address"], "192.0.2.2");
    assert!(list[0]["uuid"].is_null());
    assert!(list[0]["created_at"].is_string());
    let table = node.ok(&["appliance", "list"]);
    assert!(
        table.starts_with("NAME") && table.contains("nas3.example.org"),
        "{table}"
    );

    // `set` changes what it is given and keeps the rest.
    let new_fp = format!("SHA256:{}", "cd".repeat(32));
    let out = node.ok(&[
        "appliance",
        "set",
        "nas3",
        "--address",
        "192.0.2.3",
        "--fingerprint",
        &new_fp,
        "--meta-port",
        "20003",
    ]);
    // It names each change, as `task set` does, and only what changed.
    assert_eq!(
        out.trim_end(),
        format!(
            "appliance nas3: address nas3.example.org -> 192.0.2.3, fingerprint SHA256:{} -> {new_fp}",
            "ab".repeat(32)
        )
    );
    let nas3 = &node.json(&["appliance", "list", "--json"])[1];
    assert_eq!(
        (nas3["address"].as_str(), nas3["fingerprint"].as_str()),
        (Some("192.0.2.3"), Some(new_fp.as_str()))
    );
    assert_eq!(nas3["meta_port"], 20003);
    let out = node.ok(&["appliance", "set", "nas3", "--meta-port", "20004"]);
    assert_eq!(out.trim_end(), "appliance nas3: meta port 20003 -> 20004");
    let before = node.dump();
    let out = node.ok(&["appliance", "set", "nas3", "--address", "192.0.2.3"]);
    assert_eq!(out.trim_end(), "appliance nas3: nothing changed");
    assert_eq!(
        node.dump(),
        before,
        "an appliance set that changes nothing wrote"
    );
    assert_eq!(
        node.json(&["appliance", "list", "--json"])[1]["meta_port"],
        20004
    );

    node.ok(&["appliance", "remove", "nas3"]);
    assert_eq!(
        node.json(&["appliance", "list", "--json"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn appliance_bad_input_is_refused_and_writes_nothing() {
    let node = Node::init("nas1");
    node.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "192.0.2.2",
        "--fingerprint",
        FP,
    ]);
    let own = node.fingerprint();
    let other = format!("SHA256:{}", "1".repeat(64));
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "appliance",
                "add",
                "nas2",
                "--address",
                "h",
                "--fingerprint",
                &other,
            ],
            "already exists",
        ),
        (
            &[
                "appliance",
                "add",
                "x",
                "--address",
                "h",
                "--fingerprint",
                FP,
            ],
            "already belongs to appliance nas2",
        ),
        (
            &[
                "appliance",
                "add",
                "x",
                "--address",
                "h",
                "--fingerprint",
                &own,
            ],
            "this appliance's own",
        ),
        (
            &[
                "appliance",
                "add",
                "x",
                "--address",
                "h",
                "--fingerprint",
                "abc",
            ],
            "64 hex",
        ),
        (
            &[
                "appliance",
                "add",
                "x",
                "--address",
                "h",
                "--fingerprint",
                "MD5:00",
            ],
            "SHA256",
        ),
        (
            &[
                "appliance",
                "add",
                "x/y",
                "--address",
                "h",
                "--fingerprint",
                &other,
            ],
            "'/'",
        ),
        (
            &[
                "appliance",
                "add",
                "x",
                "--address",
                "not a host",
                "--fingerprint",
                &other,
            ],
            "host name",
        ),
        (
            &[
                "appliance",
                "add",
                "x",
                "--address",
                "h",
                "--fingerprint",
                &other,
                "--meta-port",
                "0",
            ],
            "meta-port",
        ),
        (
            &[
                "appliance",
                "add",
                "x",
                "--address",
                "h",
                "--fingerprint",
                &other,
                "--data-port",
                "70000",
            ],
            "data-port",
        ),
        (
            &[
                "appliance",
                "add",
                "x",
                "--address",
                "h",
                "--fingerprint",
                &other,
                "--data-port",
                "ten",
            ],
            "data-port",
        ),
        (&["appliance", "remove", "nope"], "no appliance named nope"),
        (
            &["appliance", "set", "nope", "--address", "h"],
            "no appliance named nope",
        ),
        (&["appliance", "set", "nas2"], "nothing to change"),
        (
            &["appliance", "set", "nas2", "--fingerprint", &own],
            "this appliance's own",
        ),
        (
            &["appliance", "set", "nas2", "--address", "a b"],
            "host name",
        ),
        (
            &["appliance", "set", "nas2", "--data-port", "0"],
            "data-port",
        ),
    ];
    for (args, expected) in cases {
        let err = node.refused(2, args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn pools_accept_only_mounted_btrfs_subvolumes() {
    require_root_and_btrfs();
    let pool = TestPool::new();
    let sub = pool.subvolume("backup");
    let plain = pool.mount.join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let node = Node::init("nas2");

    let mount = pool.mount.to_str().expect("utf8");
    node.ok(&["pool", "add", "main", mount]);
    let out = node.ok(&["pool", "add", "backup", sub.to_str().expect("utf8")]);
    assert!(out.contains(".ferry"), "{out}");
    let list = node.json(&["pool", "list", "--json"]);
    assert_eq!(list[0]["name"], "backup");
    assert_eq!(list[0]["path"], sub.to_str().expect("utf8"));
    assert_eq!(list[1]["name"], "main");
    assert!(node.ok(&["pool", "list"]).contains("backup"));

    // /dev/shm is tmpfs on every Linux: a directory that is certainly not btrfs.
    let tmp = tempfile::tempdir_in("/dev/shm").expect("tmp");
    let not_btrfs = tmp.path().to_str().expect("utf8");
    let cases: &[(&[&str], &str)] = &[
        (
            &["pool", "add", "x", plain.to_str().expect("utf8")],
            "not a btrfs subvolume",
        ),
        (
            &["pool", "add", "x", not_btrfs],
            "not on a btrfs filesystem",
        ),
        (&["pool", "add", "x", "/nonexistent/pool"], "does not exist"),
        (
            &["pool", "add", "backup", mount],
            "is already pool main, and pool backup is at",
        ),
        (
            &["pool", "add", "x", mount],
            "is already pool main; a path belongs to one pool",
        ),
        (
            &["pool", "add", "main", mount],
            "is already pool main; nothing to add",
        ),
        (
            &["pool", "add", "main", sub.to_str().expect("utf8")],
            "is already pool backup, and pool main is at",
        ),
        (&["pool", "add", "..", mount], "pool name"),
        (&["pool", "remove", "nope"], "no pool named nope"),
    ];
    for (args, expected) in cases {
        let err = node.refused(2, args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    node.ok(&["pool", "remove", "main"]);
    assert_eq!(
        node.json(&["pool", "list", "--json"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
