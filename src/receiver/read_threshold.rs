//! The data socket's wake-up threshold (`SO_RCVLOWAT`, socket(7)): on a slow
//! link the receiver wakes once a good part of a chunk has arrived, not per packet.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::libc;

use tokio::net::TcpStream;

use crate::wire::WaitHint;

/// The highest threshold: four TLS records. On a 100 Mbit/s link the
/// receiver woke every packet or two (7.4 CPU-s per GiB on the receiving end,
/// against 0.7 on a 1 Gbit link); 64 KiB is 5 ms of that link.
const MOST: usize = 64 * 1024;

/// What rustls may hold above the socket's read buffer when a payload is
/// asked for: a record being reassembled and decrypted plaintext not yet read,
/// with room to spare.
const RUSTLS_HELD: usize = 128 * 1024;

/// A [`WaitHint`] for a data connection over `tcp`, whose reads go through a
/// buffer of `buffered` bytes before TLS: the threshold is at most what must
/// still cross the socket for the payload asked for (it may sit in those
/// buffers already), so a sender that pauses after a chunk never leaves part of
/// it unread; and back to one byte between payloads. `None` when the socket
/// cannot be duplicated: the reader then wakes as data comes, as before.
pub(super) fn hint(tcp: &TcpStream, buffered: usize) -> Option<WaitHint> {
    let fd = match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!(error = %e, "cannot duplicate the data socket; reads wake per packet");
            return None;
        }
    };
    let above = buffered.saturating_add(RUSTLS_HELD);
    let mut current = 1;
    Some(Box::new(move |payload: usize| {
        let want = threshold(payload, above);
        if want != current {
            // Only a speed-up: a socket that refuses it works as before.
            if let Err(e) = set_lowat(&fd, want) {
                tracing::debug!(error = %e, "cannot set the data socket's wake-up threshold");
            }
            current = want;
        }
    }))
}

/// The threshold for reading `payload` bytes with up to `above` of them
/// possibly buffered above the socket already.
fn threshold(payload: usize, above: usize) -> usize {
    payload.saturating_sub(above).clamp(1, MOST)
}

fn set_lowat(fd: &OwnedFd, bytes: usize) -> std::io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| std::io::Error::other("option size"))?;
    // SAFETY: `fd` is an open socket, and the option value is a c_int of the
    // length passed, alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&value as *const libc::c_int).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_never_exceeds_what_must_still_cross_the_socket() {
        let above = 256 * 1024 + RUSTLS_HELD;
        assert_eq!(threshold(0, above), 1, "between payloads: any byte wakes");
        assert_eq!(
            threshold(64 * 1024, above),
            1,
            "small chunks may sit in the buffers"
        );
        assert_eq!(threshold(above + 100, above), 100);
        assert_eq!(threshold(1 << 20, above), MOST);
    }

    #[tokio::test]
    async fn the_socket_takes_the_threshold_and_a_reader_still_gets_every_byte() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let mut hint = hint(&server, 0).expect("a hint");
        hint(1 << 20);
        assert_eq!(lowat(&server), MOST as libc::c_int);
        // Fewer bytes than the threshold, then a close: the reader wakes on the
        // end of the stream and reads them all.
        client.write_all(&[7u8; 1000]).await.expect("write");
        client.shutdown().await.expect("shutdown");
        let mut buf = Vec::new();
        server.read_to_end(&mut buf).await.expect("read");
        assert_eq!(buf, vec![7u8; 1000]);
        hint(0);
        assert_eq!(lowat(&server), 1, "back to one byte between payloads");
    }

    fn lowat(tcp: &TcpStream) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an open socket; value and len are valid for the call.
        let rc = unsafe {
            libc::getsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
        value
    }
}
