//! The benchmark's quick mode end to end: `bench/bench.py --quick` with this
//! build's binary exercises every contender on loopback and on the shaped link
//! between two namespaces, cuts that link once for the resume figure, and
//! writes its JSON. The figures are not judged here
//! (tiny data, one repetition); that the bench works, and cleans up, is.
//! Needs root, btrfs, sshd, btrbk (`make test` installs them).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn bench_quick_measures_every_contender_and_cleans_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new("python3")
        .arg(root.join("bench/bench.py"))
        .args([
            "--quick",
            "--ferry",
            env!("CARGO_BIN_EXE_ferry"),
            "--out-dir",
        ])
        .arg(out.path())
        .status()
        .expect("python3 runs");
    assert!(status.success(), "bench.py --quick failed: {status}");

    let text = std::fs::read_to_string(out.path().join("latest.json")).expect("latest.json");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    let results = doc["results"].as_array().expect("results");

    let everyone = ["raw", "ssh", "btrbk_default", "btrbk_tuned", "ferry"];
    let on_link = ["ssh", "btrbk_default", "btrbk_tuned", "ferry"];
    let mut expected = Vec::new();
    for set in ["a", "b", "c", "d"] {
        expected.extend(everyone.iter().map(|c| ("loopback", set, *c)));
    }
    for set in ["a", "b"] {
        expected.extend(on_link.iter().map(|c| ("100mbit link", set, *c)));
        expected.extend(["ferry", "btrbk_tuned"].map(|c| ("1gbit link", set, c)));
    }
    expected.push(("loopback", "d-after", "ferry"));
    let compressed = ["raw", "btrbk_v2", "btrbk_v2_tuned", "ferry"];
    expected.extend(compressed.iter().map(|c| ("loopback", "z", *c)));
    expected.extend(compressed[1..].iter().map(|c| ("100mbit link", "z", *c)));
    for set in ["v", "vi"] {
        expected.extend(["ferry", "btrbk_default"].map(|c| ("loopback", set, c)));
    }
    for (net, set, who) in expected {
        let row = results
            .iter()
            .find(|r| r["net"] == net && r["dataset"] == set && r["contender"] == who)
            .unwrap_or_else(|| panic!("no row for {who} on {net} with data set ({set})"));
        let runs = row["runs"].as_array().expect("runs");
        assert!(
            !runs.is_empty(),
            "{who} on {net} ({set}) never succeeded: {}",
            row["errors"]
        );
        for run in runs {
            assert!(
                run["wall"].as_f64().unwrap() > 0.0,
                "{who} {net} {set}: wall"
            );
            assert!(run["cpu"].as_f64().is_some(), "{who} {net} {set}: cpu");
            assert!(
                run["maxrss_tx"].as_u64().unwrap() > 0,
                "{who} {net} {set}: rss"
            );
            // The raw pipe never touches the network; everyone else does.
            if who != "raw" {
                assert!(
                    run["wire"].as_u64().unwrap() > 0,
                    "{who} {net} {set}: wire bytes"
                );
            }
        }
        // Each end's own CPU is split from btrfs's where the run timed it (full sends).
        if ["a", "b", "z", "v"].contains(&set) && ["ferry", "raw"].contains(&who) {
            for key in ["cpu_btrfs_send", "cpu_btrfs_receive"] {
                assert!(row[key].as_f64().is_some(), "{who} {net} {set}: {key}");
            }
            if who == "ferry" {
                for key in ["cpu_send_end", "cpu_recv_end"] {
                    assert!(row[key].as_f64().is_some(), "{who} {net} {set}: {key}");
                }
            }
        }
        // Where the figure is the stream itself, every contender's is counted.
        if ["z", "v", "vi"].contains(&set) {
            assert!(
                row["stream_own"].as_u64().unwrap_or(0) > 0,
                "{who} {net} {set}: its own stream's bytes"
            );
        }
        if who == "ferry" {
            assert!(
                row["stream_bytes"].as_u64().unwrap() > 0,
                "ferry {net} {set}: stream bytes"
            );
            assert!(
                runs[0]["rss_rx"].as_u64().unwrap() > 0,
                "ferry {net} {set}: receiver HWM"
            );
        }
    }

    // The resume figure: ferry's incremental cut at 50% resumed, and its
    // wire over stream is a figure; btrbk got the same cut and started over.
    let resume = &doc["resume"];
    let rows = resume["rows"].as_array().expect("resume rows");
    let row = |who: &str| {
        rows.iter()
            .find(|r| r["contender"] == who)
            .unwrap_or_else(|| panic!("no link-resume row for {who}: {resume}"))
    };
    let ferry = row("ferry");
    assert!(
        ferry["cut"].as_bool().unwrap(),
        "the link was never cut: {ferry}"
    );
    assert!(ferry["dropped"].as_u64().unwrap() > 0, "{ferry}");
    assert!(
        ferry["resumed_from"].as_u64().unwrap() > 0,
        "ferry did not resume: {ferry}"
    );
    assert!(ferry["ratio"].as_f64().unwrap() >= 1.0, "{ferry}");
    let btrbk = row("btrbk_default");
    assert_eq!(btrbk["succeeded"], true, "{btrbk}");
    assert!(btrbk["wire"].as_u64().unwrap() > 0, "{btrbk}");
    let goal = doc["goals"]
        .as_array()
        .expect("goals")
        .iter()
        .find(|g| g["goal"].as_str().unwrap_or("").starts_with("link-resume"))
        .expect("the link-resume goal");
    assert!(goal["pass"].is_boolean(), "{goal}");

    let goals = doc["goals"].as_array().expect("goals");
    assert!(goals.len() >= 17, "goals: {goals:?}");
    for g in goals {
        assert!(g["pass"].is_boolean(), "goal without a verdict: {g}");
        assert!(g["measured"].is_number(), "goal without a figure: {g}");
    }
    let scale = &doc["scale"];
    assert_eq!(scale["tasks"], 20);
    assert_eq!(scale["scheduled"], 20);
    assert!(scale["vm_hwm"].as_u64().unwrap() > 0);
    assert!(scale["cpu_pct"].as_f64().is_some());

    // Nothing left behind: namespaces, loop devices, mounts, work dirs of this run.
    let leftovers = |cmd: &str, args: &[&str]| {
        let out = Command::new(cmd).args(args).output().expect(cmd);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mine = "/var/tmp/ferry-bench.";
    let work: Vec<_> = std::fs::read_dir("/var/tmp")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .filter(|p| p.starts_with(mine))
        .collect();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let loops = leftovers("losetup", &["-a"]);
    let netns = leftovers("ip", &["netns", "list"]);
    // A full `make bench` may be running beside the test; only this run's
    // leftovers (named after its pid, which we do not know) would be a bug, so
    // count them against what other benches may legitimately hold.
    let running_benches = leftovers("pgrep", &["-f", "bench/bench.py"])
        .lines()
        .count();
    if running_benches == 0 {
        assert!(work.is_empty(), "work dirs left: {work:?}");
        assert!(!mounts.contains("ferry-bench."), "mounts left: {mounts}");
        assert!(
            !loops.contains("ferry-bench."),
            "loop devices left: {loops}"
        );
        assert!(
            !netns.lines().any(|l| l.starts_with("fb")),
            "namespaces left: {netns}"
        );
    }
}
