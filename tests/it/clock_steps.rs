//! The real `ferry sender` under libfaketime: its wall clock starts 2 hours
//! behind the last run and is then stepped 4 hours forward, while monotonic
//! time runs as it does. A 60 s task keeps its minute.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::content::populate;
use crate::common::pair::Pair;

/// Where Debian's `faketime` package puts the library.
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

fn libfaketime() -> PathBuf {
    LIBFAKETIME
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libfaketime is missing: apt-get install faketime (make deps)"))
}

/// Moves the sender's wall clock: libfaketime rereads the file at every call.
fn set_offset(file: &Path, offset: &str) {
    std::fs::write(file, offset).expect("write the faketime offset");
}

fn send_rows(pair: &Pair, task: &str) -> usize {
    pair.nas1
        .json(&["history", "send", "--task", task, "--json"])
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_whose_clock_is_behind_then_stepped_forward_keeps_a_60s_task_on_its_minute() {
    let pair = Pair::new(&[]).await;
    pair.nas1.ok(&["task", "delete", "photos", "--yes"]);
    let share = pair.add_task("minutely", "60");
    // Every run sends, changed share or not: this is about the schedule.
    pair.nas1
        .ok(&["task", "set", "minutely", "--skip-unchanged", "off"]);
    populate(&share);
    // The last run, on the true clock.
    let out = pair.nas1.run_async(&["task", "run", "minutely"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(send_rows(&pair, "minutely"), 1);

    let dir = tempfile::tempdir().expect("tmp");
    let offset = dir.path().join("faketime");
    set_offset(&offset, "-2h");
    let started = Instant::now();
    let mut sender = pair
        .nas1
        .command(&["sender"])
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        // Steps move the wall clock only, as NTP or `date -s` do.
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("FERRY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferry sender");
    let mut out = BufReader::new(sender.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), out.next_line())
        .await
        .expect("ready in time")
        .expect("read")
        .expect("a readiness line");
    assert!(ready.contains("1 task(s) scheduled"), "{ready}");

    // 20 s in, the clock jumps 4 hours forward (2 hours ahead of true time):
    // the last run now looks 2 hours old, yet only 20 s have passed.
    let mut stepped = false;
    let mut ran_at = None;
    while started.elapsed() < Duration::from_secs(90) {
        if !stepped && started.elapsed() >= Duration::from_secs(20) {
            set_offset(&offset, "+2h");
            stepped = true;
        }
        if send_rows(&pair, "minutely") > 1 {
            ran_at = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(sender.id().expect("pid")).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(10), sender.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(status.success(), "{status:?}");

    // Behind the last run by 2 hours, it did not wait 2 hours; stepped
    // forward, it did not run early: one run, a minute after it started.
    let ran_at = ran_at.expect("the task never ran under the stepped clock");
    assert!(
        ran_at >= Duration::from_secs(55) && ran_at <= Duration::from_secs(80),
        "ran {ran_at:?} after the sender started, expected about 60 s"
    );
    assert_eq!(send_rows(&pair, "minutely"), 2, "ran more than once");
}
