//! The only code that runs btrfs-progs: snapshots, subvolume facts, send and receive streams.
//! Every failure names the command line that ran and what btrfs printed on stderr.

mod fs;
mod ioctl;
mod parse;
mod receive;
mod send;

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use chrono::{DateTime, Utc};
use tokio::process::Command;
use uuid::Uuid;

pub use fs::{filesystem_uuid, is_btrfs, is_subvolume, same_filesystem};
pub use parse::parse_show;
pub use receive::{receive, Receive, Received};
pub use send::{send, SendExit, SendStream};

/// The executable every command runs; resolved through `PATH` like a shell would.
/// The receiver's `btrfs receive` may use another (its config's `btrfs`).
pub const BTRFS: &str = "btrfs";

/// A failure of the btrfs layer. `command` is the command line as a person could retype it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("btrfs-progs is not installed: cannot run `{command}`: {source} (install it, e.g. `apt-get install btrfs-progs`)")]
    NotInstalled { command: String, source: io::Error },
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}`: {what}: {source}")]
    Io {
        command: String,
        what: &'static str,
        source: io::Error,
        stderr: String,
    },
    #[error("`{command}` printed output ferry cannot read: {reason}")]
    Parse { command: String, reason: String },
    #[error("{}: {source}", path.display())]
    Path { path: PathBuf, source: io::Error },
    #[error("{}: not on a btrfs filesystem", path.display())]
    NotBtrfs { path: PathBuf },
    #[error("{}: already exists; refusing to snapshot into it", path.display())]
    Exists { path: PathBuf },
    #[error("{}: not a btrfs subvolume", path.display())]
    NotSubvolume { path: PathBuf },
}

impl Error {
    /// The command line that failed, when a command ran.
    pub fn command(&self) -> Option<&str> {
        match self {
            Error::NotInstalled { command, .. }
            | Error::Spawn { command, .. }
            | Error::Failed { command, .. }
            | Error::Io { command, .. }
            | Error::Parse { command, .. } => Some(command),
            _ => None,
        }
    }

    /// What btrfs printed on stderr (trimmed), when it got that far.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            Error::Failed { stderr, .. } | Error::Io { stderr, .. } => Some(stderr),
            _ => None,
        }
    }

    fn spawn(command: String, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::NotFound {
            Error::NotInstalled { command, source }
        } else {
            Error::Spawn { command, source }
        }
    }

    fn path(path: &Path, source: io::Error) -> Error {
        Error::Path {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What `btrfs subvolume show` says about one subvolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    /// The path it was looked up by.
    pub path: PathBuf,
    pub name: String,
    pub uuid: Uuid,
    pub parent_uuid: Option<Uuid>,
    pub received_uuid: Option<Uuid>,
    pub readonly: bool,
    pub generation: u64,
    pub created: Option<DateTime<Utc>>,
}

/// A read-only snapshot of `source` at `dest` (the ioctl `btrfs subvolume
/// snapshot -r` makes), then [`show`] of it.
///
/// `dest` must not exist: btrfs would otherwise quietly create the snapshot *inside* it.
pub async fn snapshot_readonly(source: &Path, dest: &Path) -> Result<Subvolume, Error> {
    match std::fs::symlink_metadata(dest) {
        Ok(_) => {
            return Err(Error::Exists {
                path: dest.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::path(dest, e)),
    }
    if !fs::is_subvolume(source)? {
        return Err(Error::NotSubvolume {
            path: source.to_path_buf(),
        });
    }
    // A snapshot commits a btrfs transaction: milliseconds of blocking work.
    let (from, to) = (source.to_path_buf(), dest.to_path_buf());
    let made = tokio::task::spawn_blocking(move || ioctl::snapshot_readonly(&from, &to))
        .await
        .map_err(|e| Error::path(dest, io::Error::other(e)))??;
    if !made {
        run([
            "subvolume".as_ref(),
            "snapshot".as_ref(),
            "-r".as_ref(),
            source.as_os_str(),
            dest.as_os_str(),
        ])
        .await?;
    }
    show(dest).await
}

/// `btrfs subvolume delete --commit-after path`.
///
/// Waiting for the transaction commit makes the deletion durable before we record it:
/// without it a crash right after could bring back a half-received or pruned snapshot
/// that history says is gone. The cost is one commit per deletion, at most one a tick.
pub async fn delete(path: &Path) -> Result<(), Error> {
    run([
        "subvolume".as_ref(),
        "delete".as_ref(),
        "--commit-after".as_ref(),
        path.as_os_str(),
    ])
    .await?;
    Ok(())
}

/// What `btrfs subvolume show path` says: from the kernel directly where it
/// can (see [`ioctl`]), else parsed from btrfs-progs.
pub async fn show(path: &Path) -> Result<Subvolume, Error> {
    // The ioctl may wait on disk and tree locks: not on an async worker.
    let at = path.to_path_buf();
    let asked = tokio::task::spawn_blocking(move || ioctl::subvolume_info(&at))
        .await
        .map_err(|e| Error::path(path, io::Error::other(e)))??;
    match asked {
        Some(sub) => Ok(sub),
        None => show_by_progs(path).await,
    }
}

/// Parses `btrfs subvolume show path`.
async fn show_by_progs(path: &Path) -> Result<Subvolume, Error> {
    let args = [
        OsStr::new("subvolume"),
        OsStr::new("show"),
        path.as_os_str(),
    ];
    let out = run(args).await?;
    parse_show(path, &out).map_err(|reason| Error::Parse {
        command: command_line(BTRFS.as_ref(), args),
        reason,
    })
}

/// The subvolumes that are direct children of `dir`, sorted by name.
///
/// Reads the directory rather than `btrfs subvolume list`: that lists the whole
/// filesystem relative to its top level, so mapping it back onto `dir` breaks as soon
/// as a subvolume (not the top level) is mounted, and it needs root. A subvolume root
/// is always inode 256 on btrfs; children on other filesystems mounted inside `dir` are
/// left out.
pub async fn list(dir: &Path) -> Result<Vec<Subvolume>, Error> {
    if !is_btrfs(dir)? {
        return Err(Error::NotBtrfs {
            path: dir.to_path_buf(),
        });
    }
    let mut children = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::path(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::path(dir, e))?;
        let path = entry.path();
        // Not following symlinks: a link to a subvolume elsewhere is not a child.
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Deleted between readdir and stat: it is not a child any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::path(&path, e)),
        };
        if meta.is_dir() && fs::is_subvolume_root(&meta) && same_filesystem(dir, &path)? {
            children.push((entry.file_name(), path));
        }
    }
    children.sort();
    let mut subvolumes = Vec::with_capacity(children.len());
    for (_, path) in children {
        subvolumes.push(show(&path).await?);
    }
    Ok(subvolumes)
}

/// Renders a command line for messages; arguments with shell-special characters are quoted.
fn command_line<I, S>(program: &OsStr, args: I) -> String
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
fn command<I, S>(args: I) -> (Command, String)
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    command_with(BTRFS.as_ref(), args)
}

/// [`command`] running `program` instead of the `btrfs` found in `PATH`.
fn command_with<I, S>(program: &OsStr, args: I) -> (Command, String)
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

fn trimmed(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// Runs a btrfs command to completion; returns its stdout, or an error with its stderr.
async fn run<I, S>(args: I) -> Result<String, Error>
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
pub(crate) fn widen_pipe(fd: std::os::fd::BorrowedFd<'_>) {
    use nix::fcntl::{fcntl, FcntlArg};
    for size in PIPE_SIZES {
        match fcntl(fd, FcntlArg::F_SETPIPE_SZ(size)) {
            Ok(_) => return,
            Err(e) => tracing::debug!(size, error = %e, "cannot widen a pipe to btrfs this far"),
        }
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

    #[test]
    fn missing_program_reads_as_not_installed() {
        let e = Error::spawn("btrfs x".into(), io::ErrorKind::NotFound.into());
        assert!(
            e.to_string().contains("btrfs-progs is not installed"),
            "{e}"
        );
        assert_eq!(e.command(), Some("btrfs x"));
    }
}
