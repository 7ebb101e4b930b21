//! The real binary as a daemon in a child process: started, waited for its
//! readiness line, and killed when the test is done with it (or fails).

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::ferry::Node;

/// A running `ferry receiver` or `ferry sender`, killed on drop.
pub struct Running {
    pub child: Child,
    /// Its readiness line.
    pub ready: String,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the daemon has not been reaped")
    }

    /// SIGTERM, then its exit status within 10 s.
    pub async fn stop(mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the daemon exits within 10 s of SIGTERM")
            .expect("wait")
    }

    /// SIGKILL, as a crash would end it.
    pub async fn crash(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reaped");
    }
}

/// `ferry receiver` on 127.0.0.1 with free ports.
pub const RECEIVER: &[&str] = &[
    "receiver",
    "--listen",
    "127.0.0.1",
    "--meta-port",
    "0",
    "--data-port",
    "0",
];

impl Node {
    /// Starts `ferry <args>` and waits (up to 20 s) for its readiness line.
    pub async fn daemon(&self, args: &[&str]) -> Running {
        Running::start(self.command(args), &format!("ferry {args:?}")).await
    }
}

impl Running {
    /// Starts `cmd`, a daemon, and waits (up to 20 s) for its readiness line;
    /// `what` names it in a failure.
    pub async fn start(mut cmd: tokio::process::Command, what: &str) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what}: no readiness line within 20 s"))
            .expect("read stdout")
            .unwrap_or_else(|| panic!("{what} exited without a readiness line"));
        // Keep reading so the daemon never blocks on a full pipe; its log shows
        // with a failing test's output.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut log = BufReader::new(child.stderr.take().expect("stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = log.next_line().await {
                eprintln!("{line}");
            }
        });
        Running { child, ready }
    }
}
