//! The real binary: `task` and `history`, happy paths and every bad input
//! (exit 2, one line, nothing written).

use crate::common::ferry::{task_add, Node};
use crate::common::{require_root_and_btrfs, TestPool};
use ferry::store::{Kind, NewReceive, NewSend, Status};

const FP: &str = "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A source appliance that knows nas2, with a share on a real pool.
pub(crate) struct Source {
    pub(crate) node: Node,
    pub(crate) pool: TestPool,
    pub(crate) share: String,
}

pub(crate) fn source() -> Source {
    require_root_and_btrfs();
    let pool = TestPool::new();
    let share = pool.subvolume("photos").to_str().expect("utf8").to_string();
    let node = Node::init("nas1");
    node.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "127.0.0.1",
        "--fingerprint",
        FP,
    ]);
    Source { node, pool, share }
}

pub(crate) fn add_photos(s: &Source, extra: &[&str]) -> String {
    s.node.ok(&task_add("photos", &s.share, "5m", extra))
}

#[test]
fn task_add_list_show_enable_disable() {
    let s = source();
    let out = add_photos(
        &s,
        &[
            "--keep-source",
            "4",
            "--compress",
            "0",
            "--data-port",
            "20002",
        ],
    );
    assert!(out.contains("added task photos"), "{out}");

    let list = s.node.json(&["task", "list", "--json"]);
    let t = &list[0];
    assert_eq!(t["name"], "photos");
    assert_eq!(t["share"], s.share.as_str());
    assert_eq!(t["target"], "nas2");
    assert_eq!(t["pool"], "backup");
    assert_eq!(t["frequency"], "300");
    assert_eq!(t["schedule"], "every 5m");
    assert_eq!(t["enabled"], true);
    assert_eq!(
        (t["keep_source"].as_u64(), t["keep_target"].as_u64()),
        (Some(4), Some(5))
    );
    assert_eq!(t["compress"], 0);
    assert_eq!(t["compress_auto"], false);
    assert_eq!(t["data_port"], 20002);
    assert!(t["meta_port"].is_null());
    let default_dir = s.pool.mount.join(".ferry-snapshots/photos");
    assert_eq!(t["snapshot_dir"], default_dir.to_str().expect("utf8"));
    assert!(t["last_status"].is_null());
    // Adding the task creates nothing on disk yet.
    assert!(!default_dir.exists());

    let table = s.node.ok(&["task", "list"]);
    assert!(
        table.contains("photos") && table.contains("every 5m"),
        "{table}"
    );
    let show = s.node.ok(&["task", "show", "photos"]);
    assert!(show.contains("zstd") || show.contains("off"), "{show}");
    assert_eq!(
        s.node.json(&["task", "show", "photos", "--json"])["name"],
        "photos"
    );

    assert!(s
        .node
        .ok(&["task", "disable", "photos"])
        .contains("disabled"));
    assert_eq!(
        s.node.json(&["task", "show", "photos", "--json"])["enabled"],
        false
    );
    assert!(s
        .node
        .ok(&["task", "disable", "photos"])
        .contains("already disabled"));
    assert!(s.node.ok(&["task", "enable", "photos"]).contains("enabled"));
    assert_eq!(
        s.node.json(&["task", "show", "photos", "--json"])["enabled"],
        true
    );

    // Cron and a custom snapshot dir on the same filesystem.
    let docs = s.pool.subvolume("docs");
    let dir = s.pool.mount.join("snaps");
    s.node.ok(&[
        "task",
        "add",
        "docs",
        "--share",
        docs.to_str().expect("utf8"),
        "--target",
        "nas2",
        "--pool",
        "backup",
        "--frequency",
        "*/15 * * * *",
        "--snapshot-dir",
        dir.to_str().expect("utf8"),
    ]);
    let docs = s.node.json(&["task", "show", "docs", "--json"]);
    assert_eq!(docs["frequency"], "0 */15 * * * *");
    assert_eq!(docs["snapshot_dir"], dir.to_str().expect("utf8"));
    // The default compression follows the bottleneck, from zstd's default level.
    assert_eq!(
        (docs["compress"].as_i64(), docs["compress_auto"].as_bool()),
        (Some(3), Some(true))
    );
}

#[test]
fn task_add_bad_input_is_refused_and_writes_nothing() {
    let s = source();
    add_photos(&s, &[]);
    let plain = s.pool.mount.join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let plain = plain.to_str().expect("utf8");
    let other = s.pool.subvolume("other");
    let other = other.to_str().expect("utf8");
    let inside = format!("{other}/snaps");
    let second_pool = TestPool::new();
    let elsewhere = second_pool.mount.to_str().expect("utf8");
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmp");
    let not_btrfs = shm.path().to_str().expect("utf8");

    // `task add x` of the share `other`, with some flags changed or added.
    let add = |name: &str, changes: &[(&str, &str)]| -> Vec<String> {
        let mut args: Vec<String> = [
            "task",
            "add",
            name,
            "--share",
            other,
            "--target",
            "nas2",
            "--pool",
            "backup",
            "--frequency",
            "5m",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        for (flag, value) in changes {
            match args.iter().position(|a| a == flag) {
                Some(i) => args[i + 1] = value.to_string(),
                None => args.extend([flag.to_string(), value.to_string()]),
            }
        }
        args
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (add("photos", &[]), "task photos already exists"),
        (add("x", &[("--target", "nas9")]), "no appliance named nas9"),
        (add("x", &[("--frequency", "30")]), "minimum is 60s"),
        (add("x", &[("--frequency", "59s")]), "minimum is 60s"),
        (
            add("x", &[("--frequency", "*/10 * * * * *")]),
            "minimum is 60s",
        ),
        (add("x", &[("--frequency", "often")]), "neither seconds"),
        (
            add("x", &[("--frequency", "300000years")]),
            "maximum of 366 days",
        ),
        (
            add("x", &[("--frequency", "1000000000000000")]),
            "maximum of 366 days",
        ),
        (add("x", &[("--share", plain)]), "not a btrfs subvolume"),
        (
            add("x", &[("--share", not_btrfs)]),
            "not on a btrfs filesystem",
        ),
        (
            add("x", &[("--share", "/nonexistent/share")]),
            "does not exist",
        ),
        (
            add("x", &[("--share", &s.share)]),
            "already sends a share named photos",
        ),
        (add("x", &[("--pool", "../etc")]), "pool name"),
        (add("x/y", &[]), "task name"),
        (add("x", &[("--snapshot-dir", &inside)]), "inside the share"),
        (
            add("x", &[("--snapshot-dir", elsewhere)]),
            "not on the share's filesystem",
        ),
        (add("x", &[("--meta-port", "0")]), "meta-port"),
        (add("x", &[("--data-port", "65536")]), "data-port"),
        (add("x", &[("--keep-source", "0")]), "keep-source"),
        (add("x", &[("--keep-target", "0")]), "keep-target"),
        (add("x", &[("--compress", "25")]), "compress"),
        (
            add("x", &[("--compress", "fast")]),
            "give auto, a zstd level",
        ),
    ];
    for (args, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = s.node.refused(2, &args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    for args in [
        &["task", "show", "nope"][..],
        &["task", "enable", "nope"],
        &["task", "disable", "nope"],
        &["task", "delete", "nope", "--yes"],
    ] {
        let err = s.node.refused(2, args);
        assert!(err.contains("no task named nope"), "{args:?}: {err}");
    }
    let err = s.node.refused(2, &["appliance", "remove", "nas2"]);
    assert!(err.contains("target of task(s) photos"), "{err}");
}

#[test]
fn history_tables_filters_limits_and_json() {
    let node = Node::init("nas1");
    node.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "127.0.0.1",
        "--fingerprint",
        FP,
    ]);
    assert!(node
        .ok(&["history", "send"])
        .contains("no sends recorded yet"));
    assert!(node
        .ok(&["history", "receive"])
        .contains("no receives recorded yet"));

    let store = node.store();
    for task in ["photos", "docs", "photos"] {
        let id = store
            .begin_send(&NewSend {
                task_id: None,
                task,
                target: "nas2",
                share: task,
            })
            .expect("row");
        store
            .set_send_plan(
                id,
                &format!("{task}_{task}_20261121T053756Z"),
                None,
                Kind::Full,
            )
            .expect("plan");
        store
            .set_send_progress(id, 3 << 30, 1 << 30)
            .expect("progress");
        store
            .finish_send(id, Status::Succeeded, None, Some(uuid::Uuid::new_v4()))
            .expect("finish");
    }
    let failed = store
        .begin_send(&NewSend {
            task_id: None,
            task: "photos",
            target: "nas2",
            share: "photos",
        })
        .expect("row");
    store
        .finish_send(
            failed,
            Status::Failed,
            Some("connection lost after 1024 bytes"),
            None,
        )
        .expect("finish");
    let rx = store
        .begin_receive(&NewReceive {
            source: "nas2",
            source_uuid: None,
            share: "music",
            pool: "backup",
            snapshot: "music_m_20261121T053756Z",
            parent: None,
            kind: Kind::Incremental,
        })
        .expect("row");
    store
        .finish_receive(rx, Status::Succeeded, None, None)
        .expect("finish");

    let table = node.ok(&["history", "send"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("RATE"),
        "{table}"
    );
    assert!(
        lines[1].starts_with('4')
            && lines[1].contains("failed")
            && lines[1].contains("connection lost"),
        "{table}"
    );
    assert!(
        table.contains("3.0 GiB") && table.contains("1.0 GiB"),
        "{table}"
    );

    let photos = node.json(&[
        "history", "send", "--task", "photos", "--limit", "2", "--json",
    ]);
    let rows = photos.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["id"].as_i64(), rows[1]["id"].as_i64()),
        (Some(4), Some(3))
    );
    // Exactly these keys (the store's unit test pins their order too).
    let keys = |row: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = row.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };
    let sorted = |fields: &[&str]| -> Vec<String> {
        let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        fields.sort();
        fields
    };
    let attempt = [
        "snapshot",
        "parent",
        "kind",
        "status",
        "error",
        "started_at",
        "ended_at",
        "stream_bytes",
        "wire_bytes",
        "received_uuid",
        "resumed_from",
        "stream_version",
    ];
    let send_fields = [
        &["id", "task", "target", "share"][..],
        &attempt,
        &["unchanged", "warnings"],
    ]
    .concat();
    for row in rows {
        assert_eq!(keys(row), sorted(&send_fields), "{row}");
    }
    assert_eq!(rows[1]["kind"], "full");
    assert_eq!(rows[1]["status"], "succeeded");
    assert_eq!(rows[0]["error"], "connection lost after 1024 bytes");

    let received = node.json(&["history", "receive", "--source", "nas2", "--json"]);
    assert_eq!(received[0]["kind"], "incremental");
    assert_eq!(received[0]["pool"], "backup");
    let receive_fields = [
        &["id", "source", "source_uuid", "share", "pool"][..],
        &attempt,
        &["parked_until"],
    ]
    .concat();
    assert_eq!(
        keys(&received[0]),
        sorted(&receive_fields),
        "{}",
        received[0]
    );

    let err = node.refused(2, &["history", "send", "--task", "nope"]);
    assert!(err.contains("no task named nope"), "{err}");
    let err = node.refused(2, &["history", "receive", "--source", "nope"]);
    assert!(err.contains("no appliance named nope"), "{err}");
}
