//! A task's hooks: `/bin/sh -c CMD` before and after its snapshot and after its
//! run, with the run's facts in `FERRY_*` variables, bounded by a timeout, and
//! every line they print in the log.

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::config::HookSettings;
use crate::store::Task;

/// How long output is still read after a hook's shell exited.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Before the snapshot; a failure fails the run and no snapshot is taken.
    PreSnapshot,
    /// After every snapshot attempt, even a failed one.
    PostSnapshot,
    /// After a run the target confirmed, or found unchanged.
    OnSuccess,
    /// After a failed run.
    OnFailure,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::PreSnapshot => "pre-snapshot",
            Hook::PostSnapshot => "post-snapshot",
            Hook::OnSuccess => "on-success",
            Hook::OnFailure => "on-failure",
        }
    }

    /// The command for `task`: its own (`""` is none), else the config's.
    pub fn command<'a>(self, task: &'a Task, defaults: &'a HookSettings) -> Option<&'a str> {
        let (own, default) = match self {
            Hook::PreSnapshot => (&task.hooks.pre_snapshot, &defaults.pre_snapshot),
            Hook::PostSnapshot => (&task.hooks.post_snapshot, &defaults.post_snapshot),
            Hook::OnSuccess => (&task.hooks.on_success, &defaults.on_success),
            Hook::OnFailure => (&task.hooks.on_failure, &defaults.on_failure),
        };
        own.as_ref()
            .or(default.as_ref())
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a hook is told, as `FERRY_*` variables; all six are always set, empty
/// when they do not apply.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub task: String,
    pub share: String,
    /// The snapshot's path, once there is one.
    pub snapshot: String,
    pub target: String,
    /// `running` (pre-snapshot), `snapshotted` or `failed` (post-snapshot),
    /// `succeeded`, `skipped` (unchanged) or `failed` (after the run).
    pub status: String,
    pub error: String,
}

impl Facts {
    /// What the hooks after a run of `task` are told, before its outcome.
    pub(super) fn after(task: &crate::store::Task, snapshot: Option<&std::path::Path>) -> Facts {
        Facts {
            task: task.name.clone(),
            share: task.share.display().to_string(),
            snapshot: snapshot
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            target: task.target.clone(),
            status: String::new(),
            error: String::new(),
        }
    }
}

/// Why a hook failed, in words for the run's reason.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{hook} hook failed ({status}): {first_line}")]
    Failed {
        hook: Hook,
        status: String,
        first_line: String,
    },
    #[error("{hook} hook was killed after running {after:?}, its timeout (sender.hooks.timeout)")]
    TimedOut { hook: Hook, after: Duration },
    #[error("{hook} hook could not be started: {source}")]
    Spawn { hook: Hook, source: std::io::Error },
}

/// Runs `cmd` as `hook` of `facts.task`: `/bin/sh -c cmd` in its own process
/// group, stdin empty, each output line logged. Killed (the whole group)
/// after `timeout`.
///
/// # Errors
///
/// [`HookError`]: a non-zero exit (with its first stderr line), the timeout,
/// or no shell.
pub async fn run(hook: Hook, cmd: &str, facts: &Facts, timeout: Duration) -> Result<(), HookError> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("FERRY_TASK", &facts.task)
        .env("FERRY_SHARE", &facts.share)
        .env("FERRY_SNAPSHOT", &facts.snapshot)
        .env("FERRY_TARGET", &facts.target)
        .env("FERRY_STATUS", &facts.status)
        .env("FERRY_ERROR", &facts.error)
        .current_dir(Path::new("/"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Spawn { hook, source })?;
    tracing::info!(task = %facts.task, hook = %hook, command = cmd, "running hook");
    let pid = child.id();
    // Read on their own task: output must flow while we wait for the exit.
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let task = facts.task.clone();
    let readers = tokio::spawn(async move {
        let out = async {
            match out {
                Some(o) => log_lines(o, hook, &task, "stdout").await,
                None => None,
            }
        };
        let err = async {
            match err {
                Some(e) => log_lines(e, hook, &task, "stderr").await,
                None => None,
            }
        };
        tokio::join!(out, err).1
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            // The shell's children too: a hook that started a server must not
            // outlive its timeout.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill().await;
            tracing::warn!(task = %facts.task, hook = %hook, "hook killed after {timeout:?}");
            return Err(HookError::TimedOut {
                hook,
                after: timeout,
            });
        }
    };
    // A process the hook left running on purpose (a lock held until
    // post-snapshot) may keep the pipes open: its output is not waited for.
    let first_err = tokio::time::timeout(OUTPUT_GRACE, readers)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let status = status.map_err(|source| HookError::Spawn { hook, source })?;
    if status.success() {
        tracing::info!(task = %facts.task, hook = %hook, "hook done");
        return Ok(());
    }
    let status = match status.code() {
        Some(code) => format!("exit {code}"),
        None => status.to_string(),
    };
    Err(HookError::Failed {
        hook,
        first_line: first_err.unwrap_or_else(|| "it printed nothing on stderr".to_string()),
        status,
    })
}

/// Logs every line of a hook's output; returns the first non-empty one.
async fn log_lines<R: AsyncRead + Unpin>(
    from: R,
    hook: Hook,
    task: &str,
    stream: &'static str,
) -> Option<String> {
    let mut lines = BufReader::new(from).lines();
    let mut first = None;
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(task, hook = %hook, stream, "{line}");
        if first.is_none() && !line.trim().is_empty() {
            first = Some(line.trim().to_string());
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            task: "photos".into(),
            share: "/mnt/main/photos".into(),
            snapshot: "/snaps/photos_photos_20261121T053756Z".into(),
            target: "nas2".into(),
            status: "succeeded".into(),
            error: String::new(),
        }
    }

    #[tokio::test]
    async fn a_hook_sees_the_facts_and_a_failure_reads_as_its_first_stderr_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("env");
        let cmd = format!(
            "env | grep -E '^FERRY_(TASK|SHARE|SNAPSHOT|TARGET|STATUS|ERROR)=' | sort > {}; [ -z \"$FERRY_ERROR\" ]",
            out.display()
        );
        run(Hook::OnSuccess, &cmd, &facts(), Duration::from_secs(10))
            .await
            .expect("ran");
        let env = std::fs::read_to_string(&out).expect("env");
        assert_eq!(
            env,
            "FERRY_ERROR=\nFERRY_SHARE=/mnt/main/photos\n\
             FERRY_SNAPSHOT=/snaps/photos_photos_20261121T053756Z\nFERRY_STATUS=succeeded\n\
             FERRY_TARGET=nas2\nFERRY_TASK=photos\n"
        );
        let err = run(
            Hook::PreSnapshot,
            "echo fine; echo >&2; echo >&2 'database busy'; echo >&2 second; exit 3",
            &facts(),
            Duration::from_secs(10),
        )
        .await
        .expect_err("exit 3");
        assert_eq!(
            err.to_string(),
            "pre-snapshot hook failed (exit 3): database busy"
        );
    }

    #[tokio::test]
    async fn a_hook_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().expect("tmp");
        let late = dir.path().join("late");
        let cmd = format!("(sleep 2; touch {}) & sleep 30", late.display());
        let started = std::time::Instant::now();
        let err = run(
            Hook::PostSnapshot,
            &cmd,
            &facts(),
            Duration::from_millis(300),
        )
        .await
        .expect_err("timed out");
        assert!(matches!(err, HookError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!late.exists(), "the hook's child outlived the timeout");
    }
}
