//! Schedules at their edges: `--timezone` on `task add`, local times in the
//! tables, and stored values no daemon or `status` may panic on (rows edited
//! by hand, or written by a newer ferry).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use ferry::config::SenderSettings;
use ferry::sender::{Daemon, DaemonConfig, Event, ManualClock};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::common::content::populate;
use crate::common::ferry::Node;
use crate::common::pair::Pair;

/// Runs `args` with `TZ` set; returns stdout, asserting exit 0 and no panic.
async fn in_zone(node: &Node, tz: &str, args: &[&str]) -> String {
    let out = node
        .command(args)
        .env("TZ", tz)
        .output()
        .await
        .expect("run ferry");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "ferry {args:?} ({:?}): {stderr}",
        out.status.code()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sql(node: &Node, statement: &str) {
    let conn = rusqlite::Connection::open(node.state.join("state.db")).expect("open db");
    conn.execute_batch(statement).expect(statement);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timezone_is_validated_and_stored_and_tables_show_local_time() {
    let pair = Pair::new(&[]).await;
    let docs = pair.src.subvolume("docs");
    let docs = docs.to_str().expect("utf8");
    let add = |name: &str, frequency: &str, zone: &str| -> Vec<String> {
        [
            "task",
            "add",
            name,
            "--share",
            docs,
            "--target",
            "nas2",
            "--pool",
            "backup",
            "--frequency",
            frequency,
            "--timezone",
            zone,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    for (args, expected) in [
        (add("x", "30 2 * * *", "Mars/Olympus"), "not an IANA zone"),
        (add("x", "30 2 * * *", "CET-1CEST"), "not an IANA zone"),
        (
            add("x", "5m", "Europe/Berlin"),
            "applies to cron schedules only",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = pair.nas1.refused(2, &args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let args = add("docs", "30 2 * * *", "Europe/Berlin");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pair.nas1.ok(&args);
    let t = pair.nas1.json(&["task", "show", "docs", "--json"]);
    assert_eq!(t["timezone"], "Europe/Berlin");
    assert_eq!(t["schedule"], "cron 0 30 2 * * * (Europe/Berlin)");
    // Without --timezone: the system's zone, stored as none.
    let photos = pair.nas1.json(&["task", "show", "photos", "--json"]);
    assert!(photos["timezone"].is_null(), "{photos}");

    populate(&pair.share);
    pair.run_ok().await;
    let berlin = in_zone(&pair.nas1, "Europe/Berlin", &["history", "send"]).await;
    assert!(
        berlin.contains(" CET") || berlin.contains(" CEST"),
        "{berlin}"
    );
    let tokyo = in_zone(&pair.nas1, "Asia/Tokyo", &["status"]).await;
    assert!(tokyo.contains(" JST"), "{tokyo}");
    let cron_in_tokyo = in_zone(&pair.nas1, "Asia/Tokyo", &["task", "list"]).await;
    assert!(
        cron_in_tokyo.contains("(Europe/Berlin)"),
        "a task's own zone is shown as is: {cron_in_tokyo}"
    );
    // JSON stays RFC 3339 UTC whatever TZ says.
    let json = in_zone(&pair.nas1, "Asia/Tokyo", &["history", "send", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&json).expect("json");
    let started = rows[0]["started_at"].as_str().expect("started_at");
    assert!(started.ends_with('Z'), "{started}");
}

/// Waits until the scheduler has looked at its clock at `to` or later.
async fn checked_after(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    to: chrono::DateTime<Utc>,
) {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(Event::Checked { at }) if at >= to => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("the scheduler stopped: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the scheduler kept checking its clock");
}

/// Frequencies, zones and timestamps no valid command writes, through
/// `ferry status` (both sides), the task and history commands, the
/// scheduler in process on a clock moved across centuries, and the real
/// `ferry sender`: nothing panics, and the daemons keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_stored_values_never_panic_status_or_the_scheduler() {
    let pair = Pair::new(&[]).await;
    populate(&pair.share);
    pair.run_ok().await;
    let frequencies = [
        "1000000000000000",
        "99999999999999999999999",
        "18446744073709551615",
        "300000years",
        "-5",
        "0",
        "garbage",
        "",
        "0 0 31 2 *",
        "* * * * * * * *",
    ];
    for (i, frequency) in frequencies.iter().enumerate() {
        let name = format!("edge{i}");
        pair.add_task(&name, "5m");
        sql(
            &pair.nas1,
            &format!(
                "UPDATE tasks SET frequency = '{}' WHERE name = '{name}'",
                frequency.replace('\'', "''")
            ),
        );
    }
    pair.add_task("zoned", "5m");
    sql(
        &pair.nas1,
        "UPDATE tasks SET frequency = '0 0 3 * * *', timezone = 'Mars/Olympus' WHERE name = 'zoned';
         UPDATE send_history SET started_at = '9999-12-31T23:59:59.999Z' WHERE task = 'photos';
         INSERT INTO send_history (task, target, share, status, started_at, ended_at, snapshot)
         VALUES ('edge0', 'nas2', 'edge0', 'succeeded', '0000-01-01T00:00:00.000Z',
                 '9999-12-31T23:59:59.999Z', 'edge0_edge0_99991231T235959Z'),
                ('edge1', 'nas2', 'edge1', 'failed', '9999-12-31T23:59:59.999Z', NULL, NULL);",
    );
    sql(
        &pair.nas2,
        "UPDATE replicas SET received_at = '0000-01-01T00:00:00.000Z';
         UPDATE receive_history SET started_at = '9999-12-31T23:59:59.999Z';",
    );
    for node in [&pair.nas1, &pair.nas2] {
        for tz in ["UTC", "Pacific/Kiritimati", "Etc/GMT+12"] {
            for args in [
                &["status"][..],
                &["status", "--json"],
                &["task", "list"],
                &["task", "list", "--json"],
                &["history", "send"],
                &["history", "receive", "--json"],
            ] {
                in_zone(node, tz, args).await;
            }
        }
    }

    // The scheduler in process, on a clock moved by up to a thousand years.
    let clock = ManualClock::new(Utc::now());
    let mut config = DaemonConfig::new(pair.nas1.state.clone(), SenderSettings::default());
    config.clock = Arc::new(clock.clone());
    let daemon = Daemon::new(config);
    let mut events = daemon.subscribe();
    let shutdown = CancellationToken::new();
    let (_keep, settings) = watch::channel(SenderSettings::default());
    let handle = tokio::spawn(daemon.run(shutdown.clone(), settings));
    for by in [
        TimeDelta::minutes(5),
        TimeDelta::days(400),
        TimeDelta::days(365 * 1000),
        TimeDelta::seconds(1),
    ] {
        let to = clock.advance(by);
        checked_after(&mut events, to).await;
    }
    let to = clock.step(TimeDelta::days(-365 * 2000));
    checked_after(&mut events, to).await;
    shutdown.cancel();
    handle
        .await
        .expect("the scheduler did not panic")
        .expect("the scheduler stopped cleanly");

    // The real daemon reads the same rows and keeps running.
    let mut sender = pair
        .nas1
        .command(&["sender"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry sender");
    let mut out = BufReader::new(sender.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), out.next_line())
        .await
        .expect("ready in time")
        .expect("read")
        .expect("a readiness line");
    // photos, and the edges whose frequency is valid: none of these.
    assert!(ready.contains("task(s) scheduled"), "{ready}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        sender.try_wait().expect("wait").is_none(),
        "ferry sender stopped on a stored value"
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(sender.id().expect("pid")).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(10), sender.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}
