//! Under load no task starves: 8 tasks every 60 s, `max_sends` 8, a receiver
//! with `max_receives` 4 whose receives hold their slot half a second or more.
//! Every task gets a replica at least every 2 intervals.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use ferry::config::SenderSettings;
use ferry::sender::{Daemon, DaemonConfig, Event, ManualClock};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::common::daemon::Daemon as Receiver;
use crate::common::pair::Pair;

const TASKS: usize = 8;
const ROUNDS: usize = 4;

/// A `btrfs` that holds each receive half a second past its end, so that 8 runs
/// started together always contend for the 4 receive slots.
fn slow_receive() -> (tempfile::TempDir, PathBuf) {
    let real = std::process::Command::new("sh")
        .args(["-c", "command -v btrfs"])
        .output()
        .expect("sh");
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    assert!(!real.is_empty(), "btrfs is not in PATH");
    let dir = tempfile::tempdir().expect("tmp");
    let wrapper = dir.path().join("btrfs");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = receive ]; then {real} \"$@\"; rc=$?; sleep 0.5; exit $rc; fi\n\
             exec {real} \"$@\"\n"
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, wrapper)
}

/// Waits for the next `Finished`; `(task, succeeded)`.
async fn finished(events: &mut broadcast::Receiver<Event>) -> (String, bool) {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(Event::Finished { task, error, .. }) => return (task, error.is_none()),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("the scheduler stopped: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), wait)
        .await
        .expect("a run finished")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_every_task_gets_a_replica_at_least_every_two_intervals() {
    let mut pair = Pair::new(&[]).await;
    pair.nas1.ok(&["task", "delete", "photos", "--yes"]);
    let names: Vec<String> = (0..TASKS).map(|i| format!("t{i}")).collect();
    let shares: Vec<PathBuf> = names.iter().map(|n| pair.add_task(n, "60")).collect();
    let (_wrapper_dir, wrapper) = slow_receive();
    let (meta, data) = pair.stop_receiver().await;
    pair.receiver = Some(
        Receiver::start(&pair.nas2.state, |c| {
            c.meta_port = meta.port();
            c.data_port = data.port();
            c.max_receives = 4;
            c.btrfs = wrapper.clone();
        })
        .await,
    );

    let clock = ManualClock::new(Utc::now());
    let settings = SenderSettings {
        max_sends: 8,
        ..SenderSettings::default()
    };
    let mut config = DaemonConfig::new(pair.nas1.state.clone(), settings.clone());
    config.clock = Arc::new(clock.clone());
    let daemon = Daemon::new(config);
    let mut events = daemon.subscribe();
    let shutdown = CancellationToken::new();
    let (_keep, settings_rx) = watch::channel(settings);
    let handle = tokio::spawn(daemon.run(shutdown.clone(), settings_rx));

    // Each round: new data on every share, all 8 due at once, all 8 runs end.
    let mut results: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let began = std::time::Instant::now();
    for round in 0..ROUNDS {
        eprintln!("round {round} at {:?}", began.elapsed());
        for share in &shares {
            std::fs::write(
                share.join(format!("round{round}")),
                vec![round as u8; 64 << 10],
            )
            .expect("write");
        }
        if round > 0 {
            clock.advance(TimeDelta::seconds(60));
        }
        for _ in 0..TASKS {
            let (task, ok) = finished(&mut events).await;
            results.entry(task).or_default().push(ok);
        }
    }
    shutdown.cancel();
    handle
        .await
        .expect("join")
        .expect("the scheduler stopped cleanly");

    eprintln!("successes per task, round by round: {results:?}");
    assert_eq!(results.len(), TASKS, "{results:?}");
    for (task, runs) in &results {
        assert_eq!(runs.len(), ROUNDS, "{task}: {runs:?}");
        assert!(
            !runs.windows(2).any(|w| !w[0] && !w[1]),
            "{task} went 2 intervals without a replica: {runs:?}"
        );
    }
    let failed = results.values().flatten().filter(|ok| !**ok).count();
    eprintln!("{failed} of {} runs failed", TASKS * ROUNDS);
}
