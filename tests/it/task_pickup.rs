//! `task set` on a running scheduler: the edit is picked up without a restart,
//! and the incremental chain survives every edit `task set` allows.

use std::sync::Arc;
use std::time::Duration;

use crate::common::pair::Pair;
use chrono::{TimeDelta, Utc};
use ferry::config::SenderSettings;
use ferry::sender::{Daemon, DaemonConfig, Event, ManualClock};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// The next event matching `want`, failing after 60 s.
async fn until(events: &mut broadcast::Receiver<Event>, want: impl Fn(&Event) -> bool) -> Event {
    let wait = async {
        loop {
            let got = events.recv().await;
            // Shown when the test fails: what the daemon did, in order.
            eprintln!("event: {got:?}");
            match got {
                Ok(e) if want(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("the daemon stopped: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the awaited event never came")
}

fn finished(e: &Event) -> bool {
    matches!(e, Event::Finished { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_scheduler_follows_task_set_and_the_chain_survives_every_edit() {
    let pair = Pair::new(&[]).await;
    pair.nas1
        .ok(&["task", "set", "photos", "--frequency", "1h"]);
    std::fs::write(pair.share.join("a"), b"0").expect("write");
    let clock = ManualClock::new(Utc::now());
    let mut config = DaemonConfig::new(pair.nas1.state.clone(), SenderSettings::default());
    config.clock = Arc::new(clock.clone());
    let daemon = Daemon::new(config);
    let mut events = daemon.subscribe();
    let shutdown = CancellationToken::new();
    let (_keep, settings) = watch::channel(SenderSettings::default());
    let handle = tokio::spawn(daemon.run(shutdown.clone(), settings));
    // Never run: due at once, in full.
    until(&mut events, finished).await;

    // An override that names the port the appliance has: a change that works.
    let meta = pair
        .receiver
        .as_ref()
        .expect("receiver")
        .meta
        .port()
        .to_string();
    let edits: &[&[&str]] = &[
        &["--frequency", "5m"],
        &["--keep-target", "2", "--preserve-target", "none"],
        &["--keep-source", "1", "--preserve-source", "1d"],
        &["--compress", "0"],
        &["--skip-unchanged", "off", "--on-success", "true"],
        &["--meta-port", &meta],
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut args = vec!["task", "set", "photos"];
        args.extend_from_slice(edit);
        pair.nas1.ok(&args);
        until(&mut events, |e| matches!(e, Event::Loaded { .. })).await;
        std::fs::write(pair.share.join("a"), i.to_string()).expect("write");
        // Due within six minutes only because of the first edit (the last
        // run's row carries the real time, a little after the test clock's).
        let to = clock.advance(TimeDelta::minutes(6));
        until(
            &mut events,
            |e| matches!(e, Event::Checked { at } if *at >= to),
        )
        .await;
        match until(&mut events, finished).await {
            Event::Finished { error: None, .. } => {}
            other => panic!("after {edit:?}: {other:?}"),
        }
        let row = pair.send_rows()[0].clone();
        assert_eq!(row["status"], "succeeded", "after {edit:?}: {row}");
        assert_eq!(row["kind"], "incremental", "after {edit:?}: {row}");
    }
    // The retention edit took effect on the target.
    assert_eq!(pair.replicas().len(), 2);
    shutdown.cancel();
    handle
        .await
        .expect("join")
        .expect("the daemon stopped cleanly");
}
