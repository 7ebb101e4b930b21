//! One daemon of each kind per state directory: `ferry receiver` and `ferry sender`
//! each hold an exclusive lock on `<state dir>/<kind>.lock` for their lifetime.
//!
//! The lock is an open file description lock (`F_OFD_SETLK`): the kernel drops
//! it when its holder dies, crash included, so a stale lock cannot outlive its
//! process and nothing needs cleaning up. The file holds the holder's pid for
//! the message. The CLI asks whether a daemon holds it (`F_OFD_GETLK`) without
//! taking it, so a command never keeps a daemon from starting.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;

/// The daemon a lock belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Receiver,
    Sender,
}

impl Daemon {
    fn file(self) -> &'static str {
        match self {
            Daemon::Receiver => "receiver.lock",
            Daemon::Sender => "sender.lock",
        }
    }

    /// The command that runs it: `ferry receiver`.
    pub fn command(self) -> &'static str {
        match self {
            Daemon::Receiver => "ferry receiver",
            Daemon::Sender => "ferry sender",
        }
    }
}

/// Who holds a daemon's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// From the lock file; `None` in the instant between locking and writing it.
    pub pid: Option<u32>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}"),
            None => f.write_str("pid unknown"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "another {} ({holder}) uses {}; stop it first, or give this one another --state-dir",
        daemon.command(), dir.display()
    )]
    Held {
        daemon: Daemon,
        holder: Holder,
        dir: PathBuf,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// The lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// A lock on the whole file; `l_pid` must be 0 for OFD locks.
fn whole_file(kind: libc::c_short) -> libc::flock {
    // SAFETY: flock is a plain C struct for which all zeroes is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

impl StateLock {
    /// Takes `daemon`'s lock on `state_dir` (which must exist), and writes this
    /// process's pid into it.
    ///
    /// # Errors
    ///
    /// [`Error::Held`] at once when another live process holds it; [`Error::Io`]
    /// when the file cannot be opened or locked.
    pub fn acquire(state_dir: &Path, daemon: Daemon) -> Result<StateLock, Error> {
        let path = state_dir.join(daemon.file());
        let io_err = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        match fcntl(
            &file,
            FcntlArg::F_OFD_SETLK(&whole_file(libc::F_WRLCK as _)),
        ) {
            Ok(_) => {}
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => {
                return Err(Error::Held {
                    daemon,
                    holder: Holder {
                        pid: read_pid(&mut file),
                    },
                    dir: state_dir.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err(e.into())),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io_err)?;
        Ok(StateLock { _file: file })
    }

    /// Who holds `daemon`'s lock on `state_dir`, if a live process does. Takes
    /// no lock, so it never stands in a starting daemon's way.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the lock file exists but cannot be read or asked.
    pub fn holder(state_dir: &Path, daemon: Daemon) -> Result<Option<Holder>, Error> {
        let path = state_dir.join(daemon.file());
        let mut file = match File::open(&path) {
            Ok(f) => f,
            // No daemon ever ran here.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Io { path, source }),
        };
        let mut fl = whole_file(libc::F_WRLCK as _);
        fcntl(&file, FcntlArg::F_OFD_GETLK(&mut fl)).map_err(|e| Error::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        if fl.l_type == libc::F_UNLCK as libc::c_short {
            return Ok(None);
        }
        Ok(Some(Holder {
            pid: read_pid(&mut file),
        }))
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_daemon_and_state_dir_until_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(
            StateLock::holder(dir.path(), Daemon::Receiver).expect("probe"),
            None
        );
        let first = StateLock::acquire(dir.path(), Daemon::Receiver).expect("first");
        let me = Some(Holder {
            pid: Some(std::process::id()),
        });
        assert_eq!(
            StateLock::holder(dir.path(), Daemon::Receiver).expect("probe"),
            me
        );
        match StateLock::acquire(dir.path(), Daemon::Receiver) {
            Err(e @ Error::Held { .. }) => {
                let text = e.to_string();
                assert!(
                    text.starts_with(&format!(
                        "another ferry receiver (pid {}) uses {}",
                        std::process::id(),
                        dir.path().display()
                    )),
                    "{text}"
                );
            }
            other => panic!("expected Held, got {other:?}"),
        }
        // The other daemon has a lock of its own.
        let sender = StateLock::acquire(dir.path(), Daemon::Sender).expect("sender");
        drop(first);
        assert_eq!(
            StateLock::holder(dir.path(), Daemon::Receiver).expect("probe"),
            None
        );
        let _again = StateLock::acquire(dir.path(), Daemon::Receiver).expect("again");
        drop(sender);
    }
}
