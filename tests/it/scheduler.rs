//! The scheduler daemon (`ferry sender`) on real pools and a real receiver, with a
//! clock the test moves: tasks fire on schedule, follow CLI edits without a restart,
//! never overlap, respect the send cap, back off while the target is down, and stop
//! cleanly on SIGTERM.

use crate::common;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::common::content::{incompressible, populate};
use crate::common::pair::Pair;
use chrono::{TimeDelta, Utc};
use ferry::config::SenderSettings;
use ferry::sender::{Clock, Daemon, DaemonConfig, Event, ManualClock};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An in-process `ferry sender` for nas1, on a clock the test moves.
struct Scheduler {
    clock: ManualClock,
    events: broadcast::Receiver<Event>,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), ferry::sender::Error>>,
}

impl Scheduler {
    fn start(pair: &Pair, max_sends: u32) -> Scheduler {
        let clock = ManualClock::new(Utc::now());
        let settings = SenderSettings {
            max_sends,
            ..SenderSettings::default()
        };
        let mut config = DaemonConfig::new(pair.nas1.state.clone(), settings.clone());
        config.clock = Arc::new(clock.clone());
        let daemon = Daemon::new(config);
        let events = daemon.subscribe();
        let shutdown = CancellationToken::new();
        let (_keep, settings_rx) = watch::channel(settings);
        let handle = tokio::spawn(daemon.run(shutdown.clone(), settings_rx));
        Scheduler {
            clock,
            events,
            shutdown,
            handle,
        }
    }

    /// The next event matching `want`, failing after 60 s of waiting.
    async fn until(&mut self, want: impl Fn(&Event) -> bool) -> Event {
        let wait = async {
            loop {
                let got = self.events.recv().await;
                // Shown when a test fails: what the daemon did, in order.
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

    async fn finished(&mut self, task: &str) -> Option<String> {
        match self
            .until(|e| matches!(e, Event::Finished { task: t, .. } if t == task))
            .await
        {
            Event::Finished { error, .. } => error,
            _ => unreachable!(),
        }
    }

    /// Moves the clock and waits until the daemon has looked at the new time.
    async fn advance(&mut self, by: TimeDelta) {
        let to = self.clock.advance(by);
        self.until(|e| matches!(e, Event::Checked { at } if *at >= to))
            .await;
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.handle
            .await
            .expect("join")
            .expect("the daemon stopped cleanly");
    }
}

/// Reads a daemon's log until a line contains `needle`: its readiness signal.
async fn line_with<R: tokio::io::AsyncBufRead + Unpin>(
    log: &mut tokio::io::Lines<R>,
    needle: &str,
) -> String {
    while let Some(line) = log.next_line().await.expect("read the log") {
        if line.contains(needle) {
            return line;
        }
    }
    panic!("the log ended before a line with {needle:?}");
}

fn statuses(pair: &Pair, task: &str) -> Vec<String> {
    pair.nas1
        .json(&[
            "history", "send", "--task", task, "--json", "--limit", "100",
        ])
        .as_array()
        .expect("rows")
        .iter()
        .rev()
        .map(|r| r["status"].as_str().expect("status").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_fire_on_schedule_and_follow_cli_edits_without_a_restart() {
    // Every tick sends, changed share or not: this is about the schedule.
    let pair = Pair::new(&["--skip-unchanged", "off"]).await;
    populate(&pair.share);
    let mut s = Scheduler::start(&pair, 2);
    // Never run: due at once.
    assert_eq!(s.finished("photos").await, None);
    s.advance(TimeDelta::minutes(4)).await;
    assert_eq!(statuses(&pair, "photos"), ["succeeded"]);
    s.advance(TimeDelta::minutes(1)).await;
    assert_eq!(s.finished("photos").await, None);
    assert_eq!(statuses(&pair, "photos"), ["succeeded", "succeeded"]);

    pair.nas1.ok(&["task", "disable", "photos"]);
    s.until(|e| matches!(e, Event::Loaded { .. })).await;
    s.advance(TimeDelta::minutes(30)).await;
    assert_eq!(statuses(&pair, "photos").len(), 2, "a disabled task fired");

    // Its last run is 30 minutes old: enabled again, it is due at once.
    pair.nas1.ok(&["task", "enable", "photos"]);
    assert_eq!(s.finished("photos").await, None, "an enabled task resumes");
    assert_eq!(statuses(&pair, "photos").len(), 3);

    // A task added while the daemon runs is picked up; a deleted one stops.
    pair.add_task("docs", "10m");
    assert_eq!(s.finished("docs").await, None);
    pair.nas1.ok(&["task", "delete", "docs", "--yes"]);
    s.until(|e| matches!(e, Event::Loaded { .. })).await;
    s.advance(TimeDelta::hours(1)).await;
    s.finished("photos").await;
    assert_eq!(
        statuses(&pair, "docs"),
        ["succeeded"],
        "a deleted task fired"
    );
    s.stop().await;
}

/// A receiver address that accepts TCP and then says nothing: runs hang in the
/// TLS handshake until it lets go.
async fn silent_target(pair: &mut Pair) -> tokio::net::TcpListener {
    let (meta, _) = pair.stop_receiver().await;
    crate::common::rebind(meta).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_during_a_run_is_recorded_as_skipped() {
    let mut pair = Pair::new(&[]).await;
    populate(&pair.share);
    let listener = silent_target(&mut pair).await;
    let mut s = Scheduler::start(&pair, 2);
    s.until(|e| matches!(e, Event::Started { .. })).await;
    let (_held, _) = listener.accept().await.expect("the run connects");
    s.clock.advance(TimeDelta::minutes(5));
    s.until(|e| matches!(e, Event::Skipped { task } if task == "photos"))
        .await;
    s.stop().await;
    let rows = pair.nas1.json(&["history", "send", "--json"]);
    assert_eq!(rows[0]["status"], "skipped", "{rows}");
    assert!(rows[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("still in progress")));
    assert_eq!(rows[1]["status"], "failed", "{rows}");
    assert_eq!(rows[1]["error"], "interrupted by shutdown");
}

/// Runs queued, started and finished, and the most in flight at once.
#[derive(Default)]
struct Counts {
    queued: u32,
    started: u32,
    finished: u32,
    in_flight: u32,
    most: u32,
}

impl Counts {
    fn count(&mut self, e: &Event) {
        match e {
            Event::Queued { .. } => self.queued += 1,
            Event::Started { .. } => {
                self.started += 1;
                self.in_flight += 1;
                self.most = self.most.max(self.in_flight);
            }
            Event::Finished { .. } => {
                self.finished += 1;
                self.in_flight -= 1;
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_max_sends_run_at_once() {
    let mut pair = Pair::new(&[]).await;
    for name in ["a", "b", "c", "d"] {
        pair.add_task(name, "5m");
    }
    let listener = silent_target(&mut pair).await;
    let mut s = Scheduler::start(&pair, 2);
    // Two runs hold the two slots (hanging in the handshake); three wait.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(listener.accept().await.expect("a run connects").0);
    }
    let mut c = Counts::default();
    while c.queued < 5 || c.started < 2 {
        c.count(&s.until(|_| true).await);
    }
    assert_eq!(c.started, 2, "a third run started while two held the slots");
    // Let go: each run fails at once, and the next waiting one takes its slot.
    drop(held);
    drop(listener);
    while c.finished < 5 {
        c.count(&s.until(|_| true).await);
    }
    let most = c.most;
    assert_eq!(most, 2, "at most max_sends runs at once");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_down_then_up_backs_off_without_piling_snapshots_then_catches_up() {
    let mut pair = Pair::new(&[]).await;
    populate(&pair.share);
    pair.run_ok().await;
    let (meta, data) = pair.stop_receiver().await;

    let mut s = Scheduler::start(&pair, 2);
    s.advance(TimeDelta::minutes(5)).await;
    let mut retries = Vec::new();
    let mut next = s.clock.now();
    for _ in 0..3 {
        s.advance(next - s.clock.now()).await;
        let failed_at = s.clock.now();
        let Event::Finished {
            error, retry_at, ..
        } = s.until(|e| matches!(e, Event::Finished { .. })).await
        else {
            unreachable!()
        };
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("cannot reach nas2")),
            "{error:?}"
        );
        assert!(
            pair.local_snapshots().len() <= 1,
            "snapshots piled up: {:?}",
            pair.local_snapshots()
        );
        // Backing off past the next regular run means waiting for that run.
        next = retry_at.unwrap_or(failed_at + TimeDelta::minutes(5));
        retries.push(next - failed_at);
    }
    // The first retry comes after a minute and up to a quarter more (jitter),
    // the next ones later and later.
    assert!(
        retries[0] >= TimeDelta::seconds(60) && retries[0] <= TimeDelta::seconds(75),
        "{retries:?}"
    );
    assert!(retries[1] > retries[0], "{retries:?}");

    pair.restart_receiver(meta, data).await;
    std::fs::write(pair.share.join("while-down"), b"x").expect("write");
    s.advance(next - s.clock.now()).await;
    assert_eq!(
        s.finished("photos").await,
        None,
        "the catch-up run succeeds"
    );
    s.stop().await;
    let rows = pair.send_rows();
    assert_eq!(rows[0]["status"], "succeeded");
    assert_eq!(
        rows[0]["kind"], "incremental",
        "one incremental from the common base"
    );
    common::assert_same_tree(&pair.share, &pair.latest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_transfer_fails_the_row_and_exits_in_time() {
    let mut pair = Pair::new(&["--compress", "0"]).await;
    incompressible(&pair.share.join("big.bin"), 400 << 20);
    let mut daemon = pair
        .nas1
        .command(&["sender"])
        .env("FERRY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry sender");
    let mut log = BufReader::new(daemon.stderr.take().expect("stderr")).lines();
    line_with(&mut log, "streaming").await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.id().expect("pid")).expect("pid"));
    let asked = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(10), daemon.wait())
        .await
        .expect("the daemon exits within 10 s")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    assert!(asked.elapsed() < Duration::from_secs(10));
    let rows = pair.send_rows();
    assert_eq!(rows[0]["status"], "failed", "{rows}");
    assert_eq!(rows[0]["error"], "interrupted by shutdown");
    // The receiver discards the partial; once it has stopped, nothing half-received remains.
    pair.stop_receiver().await;
    assert!(
        pair.replicas().is_empty(),
        "a partial stayed: {:?}",
        pair.replicas()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_crash_left_running_are_failed_at_start_unless_their_run_is_alive() {
    let pair = Pair::new(&[]).await;
    populate(&pair.share);
    pair.add_task("docs", "1h");
    let store = pair.nas1.store();
    let row = |task| ferry::store::NewSend {
        task_id: None,
        task,
        target: "nas2",
        share: task,
    };
    // photos: its process died mid-run. docs: a `ferry task run` is still going.
    let dead = store.begin_send(&row("photos")).expect("row");
    let alive = store.begin_send(&row("docs")).expect("row");
    let _running = ferry::sender::TaskLock::try_acquire(&pair.nas1.state, "docs")
        .expect("lock")
        .expect("free");

    let mut s = Scheduler::start(&pair, 2);
    s.until(|e| matches!(e, Event::Loaded { .. })).await;
    let rows = pair.send_rows();
    let by_id = |id: i64| {
        rows.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .expect("row")
    };
    assert_eq!(by_id(dead)["status"], "failed");
    assert!(by_id(dead)["error"]
        .as_str()
        .is_some_and(|e| e.contains("interrupted")));
    assert_eq!(
        by_id(alive)["status"],
        "running",
        "a live run's row was failed"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_and_a_bad_one_is_kept_out() {
    let pair = Pair::new(&[]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("ferry.toml");
    std::fs::write(&config, "[sender]\nmax_sends = 1\n").expect("write");
    let mut daemon = pair
        .nas1
        .command(&["sender", "--config", config.to_str().expect("utf8")])
        .env("FERRY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry sender");
    let mut out = BufReader::new(daemon.stdout.take().expect("stdout")).lines();
    let ready = out
        .next_line()
        .await
        .expect("read")
        .expect("a readiness line");
    assert!(ready.contains("1 task(s) scheduled"), "{ready}");
    let mut log = BufReader::new(daemon.stderr.take().expect("stderr")).lines();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.id().expect("pid")).expect("pid"));
    let hup = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");

    std::fs::write(&config, "[sender]\nmax_sends = 3\n").expect("write");
    hup();
    let line = line_with(&mut log, "sender settings reloaded").await;
    assert!(line.contains("max_sends=3"), "{line}");

    std::fs::write(&config, "[sender]\nmax_sendz = 3\n").expect("write");
    hup();
    let line = line_with(&mut log, "configuration not reloaded").await;
    assert!(line.contains("max_sendz"), "the bad key is named: {line}");

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(10), daemon.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}
