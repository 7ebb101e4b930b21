//! A meta-port connection: cancel-safe framed send and receive of [`Meta`]
//! messages, and the keepalive that tells a slow peer from a gone one.

use std::time::Duration;

/// What a keepalive timing too large to add to an `Instant` stands for (as
/// tokio's own far future: about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::frame::{body_len, encode_into, LEN_BYTES};
use super::message::Meta;
use super::Error;

/// How a waiting side keeps a connection provably alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence after which the waiting side pings.
    pub interval: Duration,
    /// Silence after which the peer is presumed gone; also the longest wait for
    /// the peer's hello.
    pub dead_after: Duration,
}

impl Keepalive {
    /// What ferry uses in production: ping after 10 s of silence, give the peer
    /// up after 30 s (three missed pings).
    pub const DEFAULT: Keepalive = Keepalive {
        interval: Duration::from_secs(10),
        dead_after: Duration::from_secs(30),
    };
}

impl Keepalive {
    /// Pings after `interval` of silence, and gives the peer up after three
    /// silent intervals, as [`Keepalive::DEFAULT`] does with 10 s.
    pub fn every(interval: Duration) -> Keepalive {
        Keepalive {
            interval,
            dead_after: interval.saturating_mul(3),
        }
    }
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive::DEFAULT
    }
}

/// A meta-port connection.
///
/// Reads and writes go through internal buffers so that every method is
/// cancel-safe: a `recv` raced against a timer or another future in
/// `select!` loses no bytes, and a cancelled `send` is completed by the next
/// `send` or `recv_alive` instead of leaving half a frame on the wire.
#[derive(Debug)]
pub struct MetaConn<S> {
    stream: S,
    keepalive: Keepalive,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MetaConn<S> {
    /// A connection with the [`Keepalive::DEFAULT`] timings.
    pub fn new(stream: S) -> Self {
        Self::with_keepalive(stream, Keepalive::DEFAULT)
    }

    pub fn with_keepalive(stream: S, keepalive: Keepalive) -> Self {
        MetaConn {
            stream,
            keepalive,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
        }
    }

    pub fn keepalive(&self) -> Keepalive {
        self.keepalive
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Gives the stream back; bytes already read but not yet returned as a
    /// message are lost.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// # Errors
    ///
    /// The connection's: [`Error::Io`], or [`Error::Encode`]/[`Error::FrameTooLarge`] for a
    /// message that cannot be framed (nothing is sent then).
    pub async fn send(&mut self, msg: &Meta) -> Result<(), Error> {
        self.send_as(msg).await
    }

    /// Sends any serializable value as a frame (the handshake and tests need
    /// to send things that are not a well-formed [`Meta`]).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_as<T: Serialize>(&mut self, msg: &T) -> Result<(), Error> {
        encode_into(msg, &mut self.wbuf)?;
        self.flush_pending().await
    }

    async fn flush_pending(&mut self) -> Result<(), Error> {
        while self.wpos < self.wbuf.len() {
            let n = self.stream.write(&self.wbuf[self.wpos..]).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        self.stream.flush().await?;
        Ok(())
    }

    /// # Errors
    ///
    /// [`Error::Closed`] on a clean close, [`Error::Truncated`] inside a frame,
    /// [`Error::FrameTooLarge`], [`Error::Decode`] (the frame is consumed; the connection
    /// stays framed), [`Error::Io`].
    pub async fn recv(&mut self) -> Result<Meta, Error> {
        self.recv_as().await
    }

    /// Receives one frame decoded as `T`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub async fn recv_as<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        loop {
            if let [a, b, c, d, ..] = self.rbuf[..] {
                let end = LEN_BYTES + body_len([a, b, c, d])?;
                if self.rbuf.len() >= end {
                    let msg = serde_json::from_slice(&self.rbuf[LEN_BYTES..end]);
                    // Consumed even when undecodable, so the stream stays framed.
                    self.rbuf.drain(..end);
                    return msg.map_err(Error::Decode);
                }
                self.rbuf.reserve(end - self.rbuf.len());
            }
            // read_buf is cancel-safe: either it read into rbuf or nothing happened.
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(if self.rbuf.is_empty() {
                    Error::Closed
                } else {
                    Error::Truncated { what: "frame" }
                });
            }
        }
    }

    /// [`recv`](Self::recv), giving up with [`Error::Timeout`] after `after`.
    /// The connection stays usable after a timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `after`, and those of [`recv`](Self::recv).
    pub async fn recv_timeout(&mut self, after: Duration) -> Result<Meta, Error> {
        timeout(after, self.recv())
            .await
            .map_err(|_| Error::Timeout { after })?
    }

    /// Waits for the next message that is not a keepalive, while keeping the
    /// connection provably alive: pings after [`Keepalive::interval`] of
    /// silence, answers the peer's pings, and fails with [`Error::Timeout`]
    /// once the peer has been silent for [`Keepalive::dead_after`]. The silence clock
    /// starts at the call. Use this wherever a wait may be long (a running
    /// transfer, a receiver verifying), on both sides.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after [`Keepalive::dead_after`] of silence, and those of
    /// [`recv`](Self::recv) and [`send`](Self::send).
    pub async fn recv_alive(&mut self) -> Result<Meta, Error> {
        let Keepalive {
            interval,
            dead_after,
        } = self.keepalive;
        let dead = |_: tokio::time::error::Elapsed| Error::Timeout { after: dead_after };
        // Keepalive timings are parameters: a huge one means "never", not a
        // panic in Instant's addition.
        let after = |t: Instant, d: Duration| {
            t.checked_add(d)
                .or_else(|| t.checked_add(FAR_FUTURE))
                .unwrap_or(t)
        };
        let mut heard = Instant::now();
        // A send to a peer that stopped reading blocks, so it is bounded too.
        timeout_at(after(heard, dead_after), self.flush_pending())
            .await
            .map_err(dead)??;
        let mut ping_at = after(heard, interval);
        loop {
            let reply = tokio::select! {
                msg = self.recv() => {
                    heard = Instant::now();
                    ping_at = after(heard, interval);
                    match msg? {
                        Meta::Ping => Meta::Pong,
                        Meta::Pong => continue,
                        other => return Ok(other),
                    }
                }
                () = sleep_until(ping_at) => {
                    ping_at = after(ping_at, interval);
                    Meta::Ping
                }
                () = sleep_until(after(heard, dead_after)) => {
                    return Err(Error::Timeout { after: dead_after })
                }
            };
            timeout_at(after(heard, dead_after), self.send(&reply))
                .await
                .map_err(dead)??;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{write_frame, MAX_FRAME};
    use super::super::message::Reason;
    use super::*;
    use tokio::io::duplex;

    fn conn_pair() -> (MetaConn<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (a, b) = duplex(64 * 1024);
        (MetaConn::new(a), b)
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_reading_the_body() {
        let (mut conn, mut peer) = conn_pair();
        peer.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let err = conn.recv().await.unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { len, .. } if len == MAX_FRAME as u64 + 1));
        assert!(!err.is_temporary());
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_truncated() {
        for bytes in [&[0u8, 0][..], &[0, 0, 0, 10, b'{', b'"']] {
            let (mut conn, mut peer) = conn_pair();
            peer.write_all(bytes).await.unwrap();
            drop(peer);
            let err = conn.recv().await.unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "{err}");
            assert!(err.is_temporary());
        }
    }

    #[tokio::test]
    async fn clean_close_is_closed() {
        let (mut conn, peer) = conn_pair();
        drop(peer);
        assert!(matches!(conn.recv().await, Err(Error::Closed)));
    }

    #[tokio::test]
    async fn garbage_json_is_decode_and_the_stream_stays_framed() {
        let (mut conn, mut peer) = conn_pair();
        peer.write_all(b"\0\0\0\x08not json").await.unwrap();
        write_frame(&mut peer, &Meta::Pong).await.unwrap();
        let err = conn.recv().await.unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err}");
        assert!(!err.is_temporary());
        assert_eq!(conn.recv().await.unwrap(), Meta::Pong);
    }

    #[tokio::test]
    async fn frames_split_across_reads_and_batched_in_one_read() {
        let (mut conn, mut peer) = conn_pair();
        let mut bytes = Vec::new();
        encode_into(&Meta::Ping, &mut bytes).unwrap();
        encode_into(&Meta::Pong, &mut bytes).unwrap();
        let task = tokio::spawn(async move {
            for b in bytes {
                peer.write_all(&[b]).await.unwrap();
                tokio::task::yield_now().await;
            }
            peer
        });
        assert_eq!(conn.recv().await.unwrap(), Meta::Ping);
        assert_eq!(conn.recv().await.unwrap(), Meta::Pong);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn recv_timeout_leaves_the_connection_usable() {
        let (mut conn, mut peer) = conn_pair();
        // Half a frame, then silence: the timeout must not lose those bytes.
        let mut bytes = Vec::new();
        encode_into(&Meta::Ping, &mut bytes).unwrap();
        peer.write_all(&bytes[..3]).await.unwrap();
        let err = conn.recv_timeout(Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }) && err.is_temporary());
        peer.write_all(&bytes[3..]).await.unwrap();
        assert_eq!(conn.recv().await.unwrap(), Meta::Ping);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peer_is_declared_dead_within_30s() {
        let (mut conn, peer) = conn_pair();
        let start = Instant::now();
        let err = conn.recv_alive().await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(
            start.elapsed() <= Keepalive::DEFAULT.dead_after,
            "{:?}",
            start.elapsed()
        );
        // It did ask before giving up.
        let mut peer = MetaConn::new(peer);
        assert_eq!(peer.recv().await.unwrap(), Meta::Ping);
        assert_eq!(peer.recv().await.unwrap(), Meta::Ping);
    }

    #[tokio::test(start_paused = true)]
    async fn peer_answering_pongs_stays_alive() {
        let (mut conn, peer) = conn_pair();
        let mut peer = MetaConn::new(peer);
        let start = Instant::now();
        let answerer = tokio::spawn(async move {
            // Only answers pings, never speaks first, for 100 s.
            let answered: Result<Result<(), Error>, _> = timeout(Duration::from_secs(100), async {
                loop {
                    if peer.recv().await? == Meta::Ping {
                        peer.send(&Meta::Pong).await?;
                    }
                }
            })
            .await;
            assert!(answered.is_err(), "answerer failed: {answered:?}");
            peer.send(&Meta::Abort(Reason::new("done"))).await.unwrap();
            peer
        });
        let msg = conn.recv_alive().await.unwrap();
        assert_eq!(msg, Meta::Abort(Reason::new("done")));
        assert!(start.elapsed() >= Duration::from_secs(100));
        answerer.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn both_sides_waiting_keep_each_other_alive() {
        let (a, b) = duplex(64 * 1024);
        let (mut a, mut b) = (MetaConn::new(a), MetaConn::new(b));
        let waited = timeout(Duration::from_secs(300), async {
            tokio::join!(a.recv_alive(), b.recv_alive())
        })
        .await;
        assert!(waited.is_err(), "someone was declared dead: {waited:?}");
    }
}

#[cfg(test)]
mod timing_tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test(start_paused = true)]
    async fn keepalive_timings_are_the_connections_own() {
        // Pins: the timings are parameters, so a test (or a deployment) can
        // use seconds where production waits 30 s.
        let short = Keepalive {
            interval: Duration::from_millis(200),
            dead_after: Duration::from_millis(700),
        };
        let (a, b) = duplex(1024);
        let mut conn = MetaConn::with_keepalive(a, short);
        assert_eq!(conn.keepalive(), short);
        let start = Instant::now();
        let err = conn.recv_alive().await.unwrap_err();
        assert!(
            matches!(err, Error::Timeout { after } if after == short.dead_after),
            "{err}"
        );
        assert!(start.elapsed() <= short.dead_after, "{:?}", start.elapsed());
        let mut peer = MetaConn::new(b);
        for _ in 0..3 {
            assert_eq!(peer.recv().await.unwrap(), Meta::Ping);
        }
    }
}
