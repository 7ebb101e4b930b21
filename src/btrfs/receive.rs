//! `btrfs receive -e -C` fed through an `AsyncWrite`, finished by its exit status.
//! The stream comes from a peer: chrooted into the destination, its paths cannot escape it.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Child;
use tokio::task::JoinHandle;

use super::error::Error;
use super::parse::received_name;
use super::process::{command_with, drain, trimmed, wait, widen_pipe, BTRFS};
use super::splice::SplicePipe;

/// What a finished receive created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The subvolume's name, as btrfs receive reported it.
    pub name: String,
    /// `dest_dir/name`, ready for [`super::show`].
    pub path: PathBuf,
}

/// A running `btrfs receive -e -C dest_dir`; write the send stream into it, then [`finish`].
///
/// `-e` makes btrfs stop at the stream's end marker, so one receive takes exactly one
/// subvolume: bytes after the marker are never read as a second stream, and a stream
/// cut short (no end marker) fails instead of looking complete. `-C` (`--chroot`)
/// confines btrfs receive to `dest_dir`: a peer's stream naming `../` or absolute
/// paths cannot write outside it. It needs CAP_SYS_CHROOT.
///
/// Dropping it unfinished kills btrfs receive. The half-written subvolume it leaves in
/// `dest_dir` (writable, no received UUID) is the caller's to delete.
///
/// [`finish`]: Receive::finish
pub struct Receive {
    command: String,
    dest: PathBuf,
    child: Child,
    stdin: Option<SplicePipe>,
    /// Buffers the closed pipe may still hold: kept until btrfs receive exits.
    held: Vec<Vec<u8>>,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

impl Receive {
    /// Starts `btrfs receive -e -C dest_dir`. Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::NotInstalled`] or [`Error::Spawn`] when it cannot start.
    pub fn start(dest_dir: &Path) -> Result<Receive, Error> {
        Self::start_with(BTRFS.as_ref(), dest_dir)
    }

    /// [`start`](Self::start) with `program` as the btrfs executable.
    ///
    /// # Errors
    ///
    /// [`Error::NotInstalled`] or [`Error::Spawn`] when it cannot start.
    pub fn start_with(program: &Path, dest_dir: &Path) -> Result<Receive, Error> {
        let args = [
            "receive".as_ref(),
            "-e".as_ref(),
            "-C".as_ref(),
            dest_dir.as_os_str(),
        ];
        let (mut cmd, line) = command_with(program.as_os_str(), args);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::spawn(line.clone(), e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::Spawn {
                command: line,
                source: io::Error::other("stdin/stdout/stderr pipes missing"),
            });
        };
        widen_pipe(std::os::fd::AsFd::as_fd(&stdin));
        let stdin = stdin
            .into_owned_fd()
            .and_then(SplicePipe::new)
            .map_err(|e| Error::spawn(line.clone(), e))?;
        Ok(Receive {
            command: line,
            dest: dest_dir.to_path_buf(),
            child,
            stdin: Some(stdin),
            held: Vec::new(),
            stdout: drain(stdout),
            stderr: drain(stderr),
        })
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The process id of btrfs receive, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// A buffer to fill with stream bytes for [`lend`](Self::lend): one that
    /// btrfs receive has read to its end, or a new one (empty).
    pub fn spare(&mut self) -> Vec<u8> {
        self.stdin
            .as_mut()
            .map(SplicePipe::spare)
            .unwrap_or_default()
    }

    /// Writes `buf[..len]` into btrfs receive without copying it (`vmsplice`):
    /// the pipe takes the buffer's pages, and this keeps `buf` until btrfs
    /// receive has read them ([`spare`](Self::spare) then hands it out again).
    /// Like `write_all`, it returns once every byte is in the pipe.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` when btrfs receive stopped reading (or the input was closed),
    /// and other errors of the pipe.
    pub async fn lend(&mut self, buf: Vec<u8>, len: usize) -> io::Result<()> {
        match self.stdin.as_mut() {
            Some(pipe) => pipe.lend(buf, len).await,
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Closes the stream, waits for btrfs receive, and names what it received.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] when btrfs receive exits non-zero (its stderr says why: a
    /// stream cut short, a missing parent, a full disk); [`Error::Io`] when waiting
    /// for it fails; [`Error::Parse`] when it names no subvolume it created.
    pub async fn finish(mut self) -> Result<Received, Error> {
        // Closing the pipe is what delivers EOF; the buffers it may still hold
        // stay untouched until btrfs receive has exited.
        let mut held = std::mem::take(&mut self.held);
        if let Some(pipe) = self.stdin.take() {
            held.extend(pipe.close());
        }
        let stderr = wait(self.command.clone(), self.child, self.stderr).await;
        drop(held);
        let stderr = stderr?;
        // Older btrfs-progs print "At subvol" on stdout, newer on stderr.
        let stdout = trimmed(&self.stdout.await.unwrap_or_default());
        let output = format!("{stdout}\n{stderr}");
        match received_name(&output) {
            Some(name) => Ok(Received {
                path: self.dest.join(&name),
                name,
            }),
            None => Err(Error::Parse {
                command: self.command,
                reason: format!("no `At subvol`/`At snapshot` line in: {}", output.trim()),
            }),
        }
    }
}

impl AsyncWrite for Receive {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = match self.stdin.as_mut() {
            Some(stdin) => std::task::ready!(Pin::new(stdin).poll_shutdown(cx)),
            None => Ok(()),
        };
        // Closing the pipe is what delivers EOF to btrfs receive; what it
        // still holds of lent buffers stays until btrfs receive exits.
        if let Some(pipe) = self.stdin.take() {
            let held = pipe.close();
            self.held.extend(held);
        }
        Poll::Ready(result)
    }
}

/// Receives everything `reader` yields into `dest_dir`.
///
/// When the reader fails with an `io::Error` that wraps an [`Error`] (a failed
/// [`super::SendStream`]), that error is returned as is; btrfs receive is then killed.
///
/// # Errors
///
/// The error `reader` carried when it wraps an [`Error`] (a failed send), else
/// [`Error::Io`] for a failed read or for bytes after the stream's end marker;
/// and whatever [`Receive::start`] and [`Receive::finish`] return.
pub async fn receive(
    dest_dir: &Path,
    mut reader: impl AsyncRead + Unpin,
) -> Result<Received, Error> {
    let mut rx = Receive::start(dest_dir)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(source_error(&rx.command, e)),
        };
        if let Err(write_err) = rx.write_all(&buf[..n]).await {
            // btrfs receive stopped reading; its stderr says why, the pipe error does not.
            let command = rx.command.clone();
            rx.finish().await?;
            return Err(Error::Io {
                command,
                what: "stream continues after its end marker",
                source: write_err,
                stderr: String::new(),
            });
        }
    }
    rx.finish().await
}

fn source_error(command: &str, e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(Ok(err)) = e.into_inner().map(|inner| inner.downcast::<Error>()) {
            return *err;
        }
        unreachable!("checked that an Error is inside");
    }
    Error::Io {
        command: command.to_string(),
        what: "reading the stream to receive",
        source: e,
        stderr: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins: btrfs receive ran without `-C`, so a peer's stream could name paths
    /// outside the replica directory.
    #[tokio::test]
    async fn receive_is_chrooted_into_its_destination() {
        let dir = tempfile::tempdir().expect("tmp");
        let rx = Receive::start(dir.path()).expect("spawn btrfs receive");
        let expected = format!("btrfs receive -e -C {}", dir.path().display());
        assert_eq!(rx.command(), expected);
    }
}
