//! Running `btrfs` processes: the command line as messages show it, a stable
//! locale, stderr drained in the background, exit status checked, wide pipes.

use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::error::Error;

/// The executable every command runs; resolved through `PATH` like a shell would.
/// The receiver's `btrfs receive` may use another (its config's `btrfs`).
pub const BTRFS: &str = "btrfs";

/// Renders a command line for messages; arguments with shell-special characters are quoted.
pub(super) fn command_line<I, S>(program: &OsStr, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut line = program.to_string_lossy().into_owned();
    for arg in args {
        let arg = arg.as_ref().to_string_lossy();
        line.push(' ');
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
        if plain {
            line.push_str(&arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', r"'\''"));
            line.push('\'');
        }
    }
    line
}

/// A `btrfs` command with a stable locale, logged at debug level.
pub(super) fn command<I, S>(args: I) -> (Command, String)
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    command_with(BTRFS.as_ref(), args)
}

/// [`command`] running `program` instead of the `btrfs` found in `PATH`.
pub(super) fn command_with<I, S>(program: &OsStr, args: I) -> (Command, String)
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let line = command_line(program, args.clone());
    tracing::debug!(command = %line, "running btrfs");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    (cmd, line)
}

fn status_text(status: ExitStatus) -> String {
    status.to_string()
}

pub(super) fn trimmed(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// Runs a btrfs command to completion; returns its stdout, or an error with its stderr.
pub(super) async fn run<I, S>(args: I) -> Result<String, Error>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let (mut cmd, line) = command(args);
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| Error::spawn(line.clone(), e))?;
    if !out.status.success() {
        return Err(Error::Failed {
            command: line,
            status: status_text(out.status),
            stderr: trimmed(&out.stderr),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| Error::Parse {
        command: line,
        reason: "output is not UTF-8".into(),
    })
}

/// Sizes asked for the pipes to and from btrfs send and receive, largest
/// first. The default 64 KiB makes ferry and btrfs take turns; 1 MiB (the
/// usual /proc/sys/fs/pipe-max-size) lets a whole fast-link chunk sit in the
/// pipe while both work. (4 MiB pipes measured slower on loopback.)
const PIPE_SIZES: [i32; 1] = [1 << 20];

/// Widens a pipe as far as allowed; best effort, as a smaller pipe only costs speed.
pub(super) fn widen_pipe(fd: std::os::fd::BorrowedFd<'_>) {
    use nix::fcntl::{fcntl, FcntlArg};
    for size in PIPE_SIZES {
        match fcntl(fd, FcntlArg::F_SETPIPE_SZ(size)) {
            Ok(_) => return,
            Err(e) => tracing::debug!(size, error = %e, "cannot widen a pipe to btrfs this far"),
        }
    }
}

/// Reads a pipe to its end in the background, so a chatty child never blocks on a full
/// stderr pipe while we are busy with its stdout (or the other way round).
pub(super) fn drain<R: AsyncRead + Unpin + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        // A read error only loses diagnostics; the exit status still decides.
        let _ = pipe.read_to_end(&mut buf).await;
        buf
    })
}

/// Waits for the child and its drained stderr; Ok only on exit status 0.
pub(super) async fn wait(
    command: String,
    mut child: Child,
    stderr: JoinHandle<Vec<u8>>,
) -> Result<String, Error> {
    let status = child.wait().await;
    let stderr = trimmed(&stderr.await.unwrap_or_default());
    match status {
        Ok(status) if status.success() => Ok(stderr),
        Ok(status) => Err(Error::Failed {
            command,
            status: status_text(status),
            stderr,
        }),
        Err(source) => Err(Error::Io {
            command,
            what: "waiting for exit",
            source,
            stderr,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_what_a_shell_would_split() {
        let line = command_line(BTRFS.as_ref(), ["send", "-p", "/mnt/a b/it's"]);
        assert_eq!(line, r"btrfs send -p '/mnt/a b/it'\''s'");
    }
}
