//! What can go wrong in the btrfs layer; every error that ran a command names
//! the command line as a person could retype it, and what btrfs said on stderr.

use std::io;
use std::path::{Path, PathBuf};

use super::parse::ParseShowError;

/// btrfs's stderr as one line: its lines trimmed and joined with `; `, so a
/// history row, a log line or a wire reason never spans several lines.
pub fn one_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A failure of the btrfs layer. `command` is the command line as a person could retype it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("btrfs-progs is not installed: cannot run `{command}`: {source} (install it, e.g. `apt-get install btrfs-progs`)")]
    NotInstalled { command: String, source: io::Error },
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` failed ({status}): {}", one_line(stderr))]
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
    #[error("`{command}` printed output ferry cannot read: {source}")]
    Show {
        command: String,
        source: ParseShowError,
    },
    #[error("{}: {source}", path.display())]
    Path { path: PathBuf, source: io::Error },
    #[error("{}: not on a btrfs filesystem", path.display())]
    NotBtrfs { path: PathBuf },
    #[error("{}: already exists; refusing to snapshot into it", path.display())]
    Exists { path: PathBuf },
    #[error("{}: not a btrfs subvolume", path.display())]
    NotSubvolume { path: PathBuf },
    #[error("{}: something wrote into the snapshot before it was read-only; it is not the share as it was", path.display())]
    ChangedBeforeReadOnly { path: PathBuf },
}

impl Error {
    /// The command line that failed, when a command ran.
    pub fn command(&self) -> Option<&str> {
        match self {
            Error::NotInstalled { command, .. }
            | Error::Spawn { command, .. }
            | Error::Failed { command, .. }
            | Error::Io { command, .. }
            | Error::Parse { command, .. }
            | Error::Show { command, .. } => Some(command),
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

    pub(super) fn spawn(command: String, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::NotFound {
            Error::NotInstalled { command, source }
        } else {
            Error::Spawn { command, source }
        }
    }

    pub(super) fn path(path: &Path, source: io::Error) -> Error {
        Error::Path {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_reads_as_not_installed() {
        let e = Error::spawn("btrfs x".into(), io::ErrorKind::NotFound.into());
        assert!(
            e.to_string().contains("btrfs-progs is not installed"),
            "{e}"
        );
        assert_eq!(e.command(), Some("btrfs x"));
    }

    /// Pins: a btrfs error of several lines broke history tables and log lines.
    #[test]
    fn btrfs_stderr_of_several_lines_reads_as_one() {
        let e = Error::Failed {
            command: "btrfs receive -e /p".into(),
            status: "exit status: 1".into(),
            stderr: "ERROR: cannot open /p/x\n\n  ERROR: failed to finish\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "`btrfs receive -e /p` failed (exit status: 1): ERROR: cannot open /p/x; ERROR: failed to finish"
        );
        assert_eq!(one_line("a\n"), "a");
    }
}
