//! `btrfs send` as an `AsyncRead` whose end of stream means "btrfs send exited 0".

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::{Child, ChildStdout};
use tokio::task::JoinHandle;

use super::error::Error;
use super::process::{command, drain, wait, widen_pipe};

type Finishing = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// The stdout of `btrfs send -q [-p parent] snapshot`.
///
/// Reading to the end waits for btrfs to exit: a clean end of stream only when it
/// exited 0, otherwise the read fails with an `io::Error` wrapping [`Error`] (with the
/// command and stderr), so `tokio::io::copy` and friends can never mistake a failed
/// send for a complete one. Dropping the stream early kills btrfs send.
pub struct SendStream {
    command: String,
    state: State,
}

struct Running {
    stdout: ChildStdout,
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
}

enum State {
    Streaming(Box<Running>),
    Finishing(Finishing),
    Succeeded,
    /// The message of the error already returned once.
    Failed(String),
}

/// What kind of send stream to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// The send stream version: 1 (what every btrfs-progs receives), or 2
    /// (`--proto 2`: holes and preallocation cross as such, file attributes too).
    pub proto: u32,
    /// With `proto` 2: extents compressed on disk cross compressed
    /// (`--compressed-data`), not inflated by btrfs send.
    pub compressed_data: bool,
}

impl SendOptions {
    /// Send stream version 1, which every receiver takes.
    pub const V1: SendOptions = SendOptions {
        proto: 1,
        compressed_data: false,
    };
}

/// Starts `btrfs send -q [-p parent] snapshot`, a version 1 stream. Must be
/// called within a tokio runtime.
///
/// # Errors
///
/// [`Error::NotInstalled`] without btrfs-progs; [`Error::Spawn`] when the process
/// cannot start. Failures of the send itself come from reading the stream.
pub fn send(snapshot: &Path, parent: Option<&Path>) -> Result<SendStream, Error> {
    send_with(snapshot, parent, SendOptions::V1)
}

/// Starts `btrfs send -q [--proto 2 [--compressed-data]] [-p parent] snapshot`.
/// Must be called within a tokio runtime.
///
/// # Errors
///
/// [`Error::NotInstalled`] without btrfs-progs; [`Error::Spawn`] when the process
/// cannot start. Failures of the send itself come from reading the stream.
pub fn send_with(
    snapshot: &Path,
    parent: Option<&Path>,
    options: SendOptions,
) -> Result<SendStream, Error> {
    let mut args: Vec<OsString> = vec!["send".into(), "-q".into()];
    // Version 1 is btrfs-progs' default: asking for it by flag would only
    // break old btrfs-progs that lack `--proto`.
    if options.proto != 1 {
        args.push("--proto".into());
        args.push(options.proto.to_string().into());
        if options.compressed_data {
            args.push("--compressed-data".into());
        }
    }
    if let Some(parent) = parent {
        args.push("-p".into());
        args.push(parent.into());
    }
    args.push(snapshot.into());
    let (cmd, line) = command(&args);
    stream(cmd, line)
}

/// Streams the stdout of `cmd`; split from [`send`] so the plumbing is testable without btrfs.
fn stream(mut cmd: tokio::process::Command, line: String) -> Result<SendStream, Error> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::spawn(line.clone(), e))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::Spawn {
            command: line,
            source: io::Error::other("stdout/stderr pipes missing"),
        });
    };
    widen_pipe(std::os::fd::AsFd::as_fd(&stdout));
    Ok(SendStream {
        command: line,
        state: State::Streaming(Box::new(Running {
            stdout,
            child,
            stderr: drain(stderr),
        })),
    })
}

/// tokio made the pipe non-blocking for its reactor; a thread reading it
/// directly must block instead of spinning on EAGAIN.
fn set_blocking(fd: &std::os::fd::OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

/// A `btrfs send` whose pipe was taken by [`SendStream::into_blocking`]:
/// what is left is its exit status.
pub struct SendExit {
    command: String,
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
}

impl SendExit {
    /// Waits for `btrfs send` to exit; call after the pipe reached its end.
    /// Not succeeding means the stream is incomplete, however it ended.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] when btrfs send exited non-zero, [`Error::Io`] when waiting
    /// for it failed: either way the stream is incomplete.
    pub async fn finish(self) -> Result<(), Error> {
        wait(self.command, self.child, self.stderr).await.map(drop)
    }
}

impl SendStream {
    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The stream's pipe as a blocking reader, for a thread that reads it
    /// without a hop through the async runtime per read. Its end only means
    /// `btrfs send` closed it: [`SendExit::finish`] says whether it succeeded.
    /// Dropping the `SendExit` kills `btrfs send`, which ends the reader.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the stream was already read from, or its pipe cannot be
    /// taken or made blocking.
    pub fn into_blocking(mut self) -> Result<(std::fs::File, SendExit), Error> {
        let state = std::mem::replace(&mut self.state, State::Succeeded);
        let State::Streaming(running) = state else {
            return Err(Error::Io {
                command: self.command.clone(),
                what: "taking the stream's pipe",
                source: io::Error::other("the stream was already read from"),
                stderr: String::new(),
            });
        };
        let Running {
            stdout,
            child,
            stderr,
        } = *running;
        let io_err = |source| Error::Io {
            command: self.command.clone(),
            what: "taking the stream's pipe",
            source,
            stderr: String::new(),
        };
        let fd = stdout.into_owned_fd().map_err(io_err)?;
        set_blocking(&fd).map_err(io_err)?;
        let exit = SendExit {
            command: self.command.clone(),
            child,
            stderr,
        };
        Ok((std::fs::File::from(fd), exit))
    }

    /// Waits for btrfs send to exit and reports how it ended.
    ///
    /// Meant for after reading to the end; called earlier, it closes the pipe, which
    /// makes btrfs send fail, and that failure is returned.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] when btrfs send exited non-zero (or was made to, by finishing
    /// early); [`Error::Io`] when waiting failed or reading had already failed.
    pub async fn finish(mut self) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, State::Succeeded) {
            State::Streaming(running) => {
                let Running {
                    stdout,
                    child,
                    stderr,
                } = *running;
                drop(stdout);
                wait(self.command.clone(), child, stderr).await.map(drop)
            }
            State::Finishing(f) => f.await,
            State::Succeeded => Ok(()),
            State::Failed(message) => Err(Error::Io {
                command: self.command.clone(),
                what: "send stream",
                source: io::Error::other(message.clone()),
                stderr: message,
            }),
        }
    }
}

impl AsyncRead for SendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Streaming(running) => {
                    let stdout = &mut running.stdout;
                    let before = buf.filled().len();
                    match ready!(Pin::new(stdout).poll_read(cx, buf)) {
                        Ok(()) if buf.filled().len() > before || buf.remaining() == 0 => {
                            return Poll::Ready(Ok(()))
                        }
                        Ok(()) => {} // end of stdout: the exit status decides
                        Err(source) => {
                            let err = Error::Io {
                                command: this.command.clone(),
                                what: "reading the stream",
                                source,
                                stderr: String::new(),
                            };
                            this.state = State::Failed(err.to_string());
                            return Poll::Ready(Err(io::Error::other(err)));
                        }
                    }
                    if let State::Streaming(running) =
                        std::mem::replace(&mut this.state, State::Succeeded)
                    {
                        let Running { child, stderr, .. } = *running;
                        let command = this.command.clone();
                        this.state = State::Finishing(Box::pin(async move {
                            wait(command, child, stderr).await.map(drop)
                        }));
                    }
                }
                State::Finishing(f) => {
                    let result = ready!(f.as_mut().poll(cx));
                    return Poll::Ready(match result {
                        Ok(()) => {
                            this.state = State::Succeeded;
                            Ok(())
                        }
                        Err(err) => {
                            this.state = State::Failed(err.to_string());
                            Err(io::Error::other(err))
                        }
                    });
                }
                State::Succeeded => return Poll::Ready(Ok(())),
                State::Failed(message) => {
                    return Poll::Ready(Err(io::Error::other(format!(
                        "btrfs send already failed: {message}"
                    ))))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn sh(script: &str) -> SendStream {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", script]).kill_on_drop(true);
        stream(cmd, format!("sh -c {script}")).unwrap()
    }

    #[tokio::test]
    async fn failure_after_full_output_is_an_error_not_eof_even_with_huge_stderr() {
        // 1 MiB of stderr before any stdout would deadlock a reader that drains stdout only.
        let mut s =
            sh("head -c 1048576 /dev/zero | tr '\\0' e >&2; echo payload; echo boom >&2; exit 3");
        let mut out = Vec::new();
        let err = tokio::io::copy(&mut s, &mut out).await.unwrap_err();
        assert_eq!(out, b"payload\n");
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<Error>())
            .unwrap();
        assert!(matches!(inner, Error::Failed { .. }), "{inner:?}");
        assert!(inner.stderr().unwrap().ends_with("boom"));
        assert!(inner.to_string().contains("exit status: 3"));
        // The failure sticks; it never turns into a clean end later.
        assert!(s.read(&mut [0u8; 8]).await.is_err());
        assert!(s.finish().await.is_err());
    }

    #[tokio::test]
    async fn exit_zero_is_a_clean_end() {
        let mut s = sh("echo hello; echo chatter >&2");
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello\n");
        s.finish().await.unwrap();
    }

    #[tokio::test]
    async fn finishing_early_reports_the_failure() {
        let s = sh("head -c 10000000 /dev/zero");
        assert!(
            s.finish().await.is_err(),
            "closing the pipe early is not success"
        );
    }
}
