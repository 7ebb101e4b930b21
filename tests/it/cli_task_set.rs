//! The real binary: `task set` validates exactly like `task add` (the same
//! messages for the same bad values), refuses to move a task's replica line,
//! and its edits show in `task show`.

use crate::common::ferry::{task_add, Node};
use crate::common::{require_root_and_btrfs, TestPool};

const FP: &str = "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// nas1 knowing nas2 and nas3, with the task `photos` and a second share.
struct Source {
    node: Node,
    _pool: TestPool,
    share: String,
    other: String,
}

fn source() -> Source {
    require_root_and_btrfs();
    let pool = TestPool::new();
    let share = pool.subvolume("photos").to_str().expect("utf8").to_string();
    let other = pool.subvolume("docs").to_str().expect("utf8").to_string();
    let node = Node::init("nas1");
    for (name, fp) in [("nas2", FP.to_string()), ("nas3", FP.replace("01", "10"))] {
        node.ok(&[
            "appliance",
            "add",
            name,
            "--address",
            "127.0.0.1",
            "--fingerprint",
            &fp,
        ]);
    }
    node.ok(&task_add("photos", &share, "5m", &[]));
    Source {
        node,
        _pool: pool,
        share,
        other,
    }
}

/// The message of a refusal, without clap's pointer to the command's help.
fn message(line: &str) -> String {
    line.split(" (see 'ferry task")
        .next()
        .unwrap_or(line)
        .replace("task add needs --frequency", "")
        // `task set` checks against the stored (canonical) frequency.
        .replace("frequency \"300\"", "frequency \"5m\"")
}

#[test]
fn task_set_refuses_what_task_add_refuses_with_the_same_words() {
    let s = source();
    let bad: &[(&str, &str, &str)] = &[
        ("--frequency", "30", "minimum is 60s"),
        ("--frequency", "often", "neither seconds"),
        ("--keep-source", "0", "keep-source"),
        ("--keep-target", "0", "keep-target"),
        ("--preserve-target", "7x", "`7x` is not a count and a unit"),
        ("--preserve-target", "0d", "between 1 and 10000"),
        ("--preserve-source", "7d 3d", "daily periods twice"),
        ("--compress", "fast", "give auto, a zstd level"),
        ("--skip-unchanged", "maybe", "give on or off"),
        ("--meta-port", "0", "give a port 1-65535"),
        ("--timezone", "Mars/Olympus", "Mars/Olympus"),
        (
            "--timezone",
            "Europe/Berlin",
            "applies to cron schedules only",
        ),
        ("--data-port", "65536", "give a port 1-65535"),
    ];
    for (flag, value, says) in bad {
        let mut add = vec![
            "task", "add", "docs", "--share", &s.other, "--target", "nas2", "--pool", "backup",
        ];
        if *flag != "--frequency" {
            add.extend(["--frequency", "5m"]);
        }
        add.extend([*flag, *value]);
        let add = s.node.refused(2, &add);
        let set = s.node.refused(2, &["task", "set", "photos", flag, value]);
        assert!(set.contains(says), "{flag} {value}: {set}");
        assert_eq!(message(&set), message(&add), "{flag} {value}");
    }

    // What names the replica line or holds the chain cannot change.
    for (args, says) in [
        (vec!["--target", "nas3"], "cannot move from nas2 to nas3"),
        (
            vec!["--pool", "archive"],
            "cannot move from pool backup to archive",
        ),
        (
            vec!["--share", &s.other],
            "the target keeps one replica line per share",
        ),
        (
            vec!["--snapshot-dir", "/tmp/x"],
            "its common base with nas2 lives in",
        ),
    ] {
        let mut all = vec!["task", "set", "photos"];
        all.extend(args);
        let err = s.node.refused(2, &all);
        assert!(err.contains(says), "{err}");
        assert!(err.contains("ferry task add"), "names the way: {err}");
    }
    let err = s.node.refused(2, &["task", "set", "photos"]);
    assert!(err.contains("nothing to change"), "{err}");
    let err = s
        .node
        .refused(2, &["task", "set", "nope", "--keep-target", "2"]);
    assert!(err.contains("no task named nope"), "{err}");
}

#[test]
fn task_set_changes_what_it_is_given_and_nothing_else() {
    let s = source();
    let before = s.node.json(&["task", "show", "photos", "--json"]);
    assert_eq!(before["keep_source"], 3);
    assert_eq!(before["keep_target"], 5);
    assert_eq!(before["preserve_source"], "none");
    assert_eq!(before["preserve_target"], "24h 7d 4w 12m");
    assert_eq!(before["skip_unchanged"], true);
    assert!(before["pre_snapshot"].is_null());

    let out = s.node.ok(&[
        "task",
        "set",
        "photos",
        "--target",
        "nas2", // the same target is no change
        "--frequency",
        "1h",
        "--keep-target",
        "9",
        "--preserve-target",
        "2y,30d 48h",
        "--skip-unchanged",
        "off",
        "--pre-snapshot",
        "sync",
        "--on-failure",
        "",
        "--meta-port",
        "12345",
    ]);
    assert!(out.contains("keep target 5 -> 9"), "{out}");
    assert!(
        out.contains("preserve target 24h 7d 4w 12m -> 48h 30d 2y"),
        "{out}"
    );
    let after = s.node.json(&["task", "show", "photos", "--json"]);
    assert_eq!(after["frequency"], "3600");
    assert_eq!(after["keep_target"], 9);
    assert_eq!(after["preserve_target"], "48h 30d 2y");
    assert_eq!(after["skip_unchanged"], false);
    assert_eq!(after["pre_snapshot"], "sync");
    assert_eq!(after["on_failure"], "");
    assert_eq!(after["meta_port"], 12345);
    for unchanged in [
        "share",
        "target",
        "pool",
        "snapshot_dir",
        "keep_source",
        "preserve_source",
        "compress",
        "compress_auto",
        "data_port",
        "enabled",
        "created_at",
    ] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged}");
    }
    assert_eq!(after["share"], s.share.as_str());

    let out = s.node.ok(&[
        "task",
        "set",
        "photos",
        "--hooks-from-config",
        "--meta-port",
        "default",
    ]);
    assert!(out.contains("meta port 12345 -> default"), "{out}");
    let reset = s.node.json(&["task", "show", "photos", "--json"]);
    assert!(reset["pre_snapshot"].is_null() && reset["on_failure"].is_null());
    assert!(reset["meta_port"].is_null());
    let out = s.node.ok(&["task", "set", "photos", "--keep-target", "9"]);
    assert!(out.contains("nothing changed"), "{out}");

    // A zone goes with a cron schedule, and back to the system's.
    s.node.ok(&[
        "task",
        "set",
        "photos",
        "--frequency",
        "0 3 * * *",
        "--timezone",
        "Europe/Berlin",
    ]);
    let zoned = s.node.json(&["task", "show", "photos", "--json"]);
    assert_eq!(zoned["timezone"], "Europe/Berlin");
    let err = s
        .node
        .refused(2, &["task", "set", "photos", "--frequency", "5m"]);
    assert!(err.contains("applies to cron schedules only"), "{err}");
    s.node.ok(&[
        "task",
        "set",
        "photos",
        "--frequency",
        "5m",
        "--timezone",
        "system",
    ]);
    assert!(s.node.json(&["task", "show", "photos", "--json"])["timezone"].is_null());
}

/// Every setting `task set` takes is stored and named in its output: a
/// setting the change list left out was silently dropped ("nothing changed").
#[test]
fn task_set_stores_the_bandwidth_limit_and_send_compressed() {
    let s = source();
    let before = s.node.json(&["task", "show", "photos", "--json"]);
    assert_eq!(before["bwlimit"], 0);
    assert_eq!(before["send_compressed"], "auto");

    let out = s.node.ok(&[
        "task",
        "set",
        "photos",
        "--bwlimit",
        "5MiB",
        "--send-compressed",
        "no",
    ]);
    assert!(out.contains("bandwidth limit none -> 5MiB/s"), "{out}");
    assert!(out.contains("send compressed auto -> no"), "{out}");
    let after = s.node.json(&["task", "show", "photos", "--json"]);
    assert_eq!(after["bwlimit"], 5 * 1024 * 1024);
    assert_eq!(after["send_compressed"], "no");

    // Two limits that round to the same figure still differ.
    s.node
        .ok(&["task", "set", "photos", "--bwlimit", "5121KiB"]);
    let out = s
        .node
        .ok(&["task", "set", "photos", "--bwlimit", "5122KiB"]);
    assert!(out.contains("5243904 B/s -> 5244928 B/s"), "{out}");
    assert_eq!(
        s.node.json(&["task", "show", "photos", "--json"])["bwlimit"],
        5122 * 1024
    );

    let out = s.node.ok(&["task", "set", "photos", "--bwlimit", "0"]);
    assert!(out.contains("-> none"), "{out}");
    assert_eq!(
        s.node.json(&["task", "show", "photos", "--json"])["bwlimit"],
        0
    );
    let out = s.node.ok(&["task", "set", "photos", "--bwlimit", "0"]);
    assert!(out.contains("nothing changed"), "{out}");
}
