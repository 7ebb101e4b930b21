//! btrfs receive's input pipe, fed without a copy: `vmsplice` lends the pipe
//! the pages of whole buffers, which stay untouched until btrfs receive read them.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::errno::Errno;
use nix::fcntl::{vmsplice, SpliceFFlags};
use tokio::io::AsyncWrite;
use tokio::net::unix::pipe::Sender;

nix::ioctl_read_bad!(pipe_queued, nix::libc::FIONREAD, nix::libc::c_int);

/// A buffer whose pages the pipe may still hold, and the stream position
/// (bytes put into the pipe) its last byte ends at.
struct Lent {
    buf: Vec<u8>,
    end: u64,
}

/// The write end of a pipe (non-blocking). [`lend`](Self::lend) puts a
/// buffer's bytes in by reference; [`spare`](Self::spare) hands back a buffer
/// once the reader has read past its end, so a buffer is never written while
/// the pipe still holds its pages. Plain `AsyncWrite` copies, as `write` does.
pub(super) struct SplicePipe {
    fd: Sender,
    lent: VecDeque<Lent>,
    free: Vec<Vec<u8>>,
    /// Bytes put into the pipe so far, copied or lent.
    put: u64,
    /// `vmsplice` was refused (a kernel without it): copy from then on.
    copy: bool,
}

impl SplicePipe {
    /// Takes over `fd`, a pipe's write end (made non-blocking).
    ///
    /// # Errors
    ///
    /// When `fd` is no pipe, or the runtime cannot watch it.
    pub(super) fn new(fd: OwnedFd) -> io::Result<Self> {
        Ok(SplicePipe {
            fd: Sender::from_owned_fd(fd)?,
            lent: VecDeque::new(),
            free: Vec::new(),
            put: 0,
            copy: false,
        })
    }

    /// A buffer free to fill: one the reader is done with, or a new one.
    pub(super) fn spare(&mut self) -> Vec<u8> {
        let mut queued: nix::libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which is valid.
        let asked = unsafe { pipe_queued(self.fd.as_raw_fd(), &mut queued) };
        if asked.is_ok() {
            let read = self
                .put
                .saturating_sub(u64::try_from(queued).unwrap_or(u64::MAX));
            while self.lent.front().is_some_and(|l| l.end <= read) {
                if let Some(done) = self.lent.pop_front() {
                    self.free.push(done.buf);
                }
            }
        }
        self.free.pop().unwrap_or_default()
    }

    /// Puts `buf[..len]` into the pipe by reference, waiting for room; `buf`
    /// is kept until the reader has read it. Cancelling leaves `buf` kept (its
    /// pages may be in the pipe) but the stream's position unknown, as with a
    /// cancelled write.
    ///
    /// # Errors
    ///
    /// Those of `vmsplice`/`write` on the pipe: `BrokenPipe` once the reader is gone.
    pub(super) async fn lend(&mut self, buf: Vec<u8>, len: usize) -> io::Result<()> {
        let len = len.min(buf.len());
        if len == 0 {
            self.free.push(buf);
            return Ok(());
        }
        let end = self.put.saturating_add(len as u64);
        self.lent.push_back(Lent { buf, end });
        let mut done = 0;
        while done < len {
            self.fd.writable().await?;
            let Some(entry) = self.lent.back() else {
                return Err(io::Error::other("lent buffer missing"));
            };
            let rest = &entry.buf[done..len];
            let fd = &self.fd;
            let put = if self.copy {
                fd.try_write(rest)
            } else {
                fd.try_io(|| {
                    vmsplice(
                        fd.as_fd(),
                        &[IoSlice::new(rest)],
                        SpliceFFlags::SPLICE_F_NONBLOCK,
                    )
                    .map_err(io::Error::from)
                })
            };
            match put {
                Ok(n) => {
                    done += n;
                    self.put = self.put.saturating_add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if !self.copy && refused(&e) => {
                    tracing::debug!(error = %e, "vmsplice refused; copying into btrfs receive's pipe");
                    self.copy = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Errors that say this kernel or pipe does not take `vmsplice` at all.
fn refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
    )
}

impl AsyncWrite for SplicePipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(Pin::new(&mut this.fd).poll_write(cx, buf))?;
        this.put = this.put.saturating_add(n as u64);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl SplicePipe {
    /// Closes the write end (the reader sees EOF) and returns the buffers the
    /// pipe may still hold: keep them until the reader has exited.
    pub(super) fn close(self) -> Vec<Vec<u8>> {
        let SplicePipe { fd, lent, .. } = self;
        drop(fd);
        lent.into_iter().map(|l| l.buf).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn pipe() -> (tokio::net::unix::pipe::Receiver, SplicePipe) {
        let (tx, rx) = tokio::net::unix::pipe::pipe().expect("pipe");
        let fd = tx.into_nonblocking_fd().expect("fd");
        (rx, SplicePipe::new(fd).expect("watch"))
    }

    /// Pins: a buffer lent to the pipe is handed out again only once the
    /// reader has read past its end; what the reader gets is what was lent,
    /// even when the buffer is refilled right after.
    #[tokio::test]
    async fn a_lent_buffer_comes_back_only_after_it_was_read() {
        let (mut rx, mut pipe) = pipe();
        // Well under the pipe's 16 slots, however the buffer lies across pages.
        const LEN: usize = 16 * 1024;
        let mut first = pipe.spare();
        first.resize(LEN, 1);
        pipe.lend(first, LEN).await.expect("lend");
        // Nothing read yet: the first buffer is still lent out.
        let second = pipe.spare();
        assert!(
            second.is_empty(),
            "a lent buffer came back before it was read"
        );
        let mut got = vec![0u8; LEN];
        rx.read_exact(&mut got).await.expect("read");
        assert!(got.iter().all(|&b| b == 1));
        let mut back = pipe.spare();
        assert_eq!(back.len(), LEN, "the read buffer did not come back");
        back.fill(2);
        pipe.lend(back, 1000).await.expect("lend again");
        let mut more = vec![0u8; 1000];
        rx.read_exact(&mut more).await.expect("read again");
        assert!(more.iter().all(|&b| b == 2));
        let held = pipe.close();
        assert_eq!(held.len(), 1);
        let mut rest = Vec::new();
        rx.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty());
    }

    /// Pins: a buffer larger than the pipe goes in piece by piece, as the reader makes room.
    #[tokio::test]
    async fn a_buffer_larger_than_the_pipe_waits_for_room() {
        let (mut rx, mut pipe) = pipe();
        let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).await.expect("read");
            got
        });
        let len = data.len();
        pipe.lend(data, len).await.expect("lend");
        // The pipe may still hold the buffer's pages until the reader is done.
        let held = pipe.close();
        assert_eq!(reader.await.expect("reader"), expected);
        drop(held);
    }
}
