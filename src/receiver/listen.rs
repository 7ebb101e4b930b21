//! The accept loops: TLS on both ports under a deadline, then a meta session or the
//! routing of a data connection to the session waiting for it.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::error::RouteError;
use super::park;
use super::read_threshold;
use super::session::serve_meta;
use super::shared::{DataConn, DataStream, Shared, StorePeers};
use super::stats::Refusal;
use crate::identity::{self, Fingerprint, TrustedPeers};
use crate::wire::{read_data_hello, ChunkReader, WaitHint};

/// How long sessions get to clean up (kill btrfs receive, delete the partial,
/// finish their rows) once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// How often parked receives are checked for an ended resume window.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// At most one warning this often about connections dropped over the handshake
/// cap: a flood must not flood the journal too.
const OVERFLOW_WARN_EVERY: Duration = Duration::from_secs(10);

/// Socket reads under TLS on the data port. rustls reads the socket 4 KiB at a
/// time (and shrinks its buffer whenever it empties), which cost the receiver
/// one `recv` per 4 KiB: a quarter of its CPU on a loopback transfer. Reads of
/// up to this size serve rustls from memory instead.
const DATA_READ_BUFFER: usize = 256 * 1024;

/// The address a bound listener listens on.
pub(super) fn local_addr(l: &TcpListener) -> SocketAddr {
    // A bound listener always has a local address; the fallback is unreachable.
    l.local_addr()
        .unwrap_or_else(|_| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
}

/// Connections dropped because `max_handshakes` were in progress.
#[derive(Default)]
struct Overflow {
    dropped: u64,
    warned: Option<Instant>,
}

impl Overflow {
    fn drop_one(&mut self, port: &'static str, addr: SocketAddr, cap: usize) {
        self.dropped += 1;
        tracing::debug!(peer = %addr, port, "dropped connection: {cap} TLS handshakes already in progress");
        if self
            .warned
            .is_none_or(|t| t.elapsed() >= OVERFLOW_WARN_EVERY)
        {
            tracing::warn!(peer = %addr, port, dropped = self.dropped,
                "dropped connections over the cap of {cap} TLS handshakes in progress (a flood?)");
            self.warned = Some(Instant::now());
            self.dropped = 0;
        }
    }
}

pub(super) async fn serve(
    shared: Arc<Shared>,
    meta: TcpListener,
    data: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) {
    tracing::info!(meta = %local_addr(&meta), data = %local_addr(&data),
        appliance = %shared.me.name, "receiver listening");
    tokio::pin!(shutdown);
    let mut tasks = JoinSet::new();
    let cap = shared.config.max_handshakes;
    let handshakes = Arc::new(Semaphore::new(cap));
    let mut overflow = Overflow::default();
    let mut reap = tokio::time::interval(REAP_EVERY);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = reap.tick() => {
                let shared = shared.clone();
                tasks.spawn(async move { park::reap(&shared, false).await });
            }
            accepted = meta.accept() => match accepted {
                Ok((tcp, addr)) => match handshakes.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tasks.spawn(meta_connection(shared.clone(), tcp, addr, permit));
                    }
                    Err(_) => overflow.drop_one("meta", addr, cap),
                },
                Err(e) => accept_failed("meta", e).await,
            },
            accepted = data.accept() => match accepted {
                Ok((tcp, addr)) => match handshakes.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tasks.spawn(data_connection(shared.clone(), tcp, addr, permit));
                    }
                    Err(_) => overflow.drop_one("data", addr, cap),
                },
                Err(e) => accept_failed("data", e).await,
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => log_panic(done),
        }
    }
    drop((meta, data));
    tracing::info!(sessions = tasks.len(), "receiver shutting down");
    shared.begin_shutdown();
    let drained = timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = tasks.join_next().await {
            log_panic(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            sessions = tasks.len(),
            "sessions did not finish in time; aborting them"
        );
        tasks.shutdown().await;
    }
    // A parked receive does not survive the receiver: deleted now, or by the
    // startup sweep if this takes too long.
    if timeout(SHUTDOWN_GRACE, park::reap(&shared, true))
        .await
        .is_err()
    {
        tracing::warn!("parked receives not discarded in time; the next start deletes them");
    }
    tracing::info!("receiver stopped");
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a receiver session panicked");
        }
    }
}

/// Out of file descriptors and the like: say so, and back off so the loop does
/// not spin on an error that persists.
async fn accept_failed(port: &str, e: std::io::Error) {
    tracing::warn!(port, error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Records the fingerprint a client presented, so a refused handshake can be
/// logged with it next to the address.
#[derive(Debug)]
struct Witness {
    peers: Arc<StorePeers>,
    seen: Mutex<Option<Fingerprint>>,
}

impl TrustedPeers for Witness {
    fn is_trusted(&self, fp: &Fingerprint) -> bool {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(*fp);
        }
        self.peers.is_trusted(fp)
    }
}

/// The TLS handshake under `handshake_timeout`; returns the stream and the
/// peer's fingerprint, or logs why not. Nothing is read from a peer that fails.
async fn accept_tls<S>(
    shared: &Shared,
    port: &'static str,
    tcp: S,
    addr: SocketAddr,
) -> Option<(TlsStream<S>, Fingerprint)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let witness = Arc::new(Witness {
        peers: shared.peers.clone(),
        seen: Mutex::new(None),
    });
    let config = match identity::server_config(&shared.identity, witness.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(peer = %addr, port, error = %e, "cannot build the TLS configuration");
            return None;
        }
    };
    let after = shared.config.handshake_timeout;
    let outcome = timeout(after, TlsAcceptor::from(config).accept(tcp)).await;
    let seen = witness.seen.lock().ok().and_then(|s| *s);
    let fingerprint = seen.map_or_else(|| "none presented".to_owned(), |f| f.to_string());
    let tls = match outcome {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::warn!(peer = %addr, port, fingerprint, error = %e, "refused connection: TLS handshake failed");
            let unknown = seen.is_some_and(|fp| !shared.peers.is_trusted(&fp));
            shared.stats().refused(if unknown {
                Refusal::UnknownPeer
            } else {
                Refusal::Handshake
            });
            return None;
        }
        Err(_) => {
            tracing::warn!(peer = %addr, port, fingerprint, "refused connection: no TLS handshake within {after:?}");
            shared.stats().refused(Refusal::Handshake);
            return None;
        }
    };
    match identity::peer_fingerprint(tls.get_ref().1) {
        Some(fp) => Some((tls, fp)),
        None => {
            tracing::warn!(peer = %addr, port, "refused connection: no client certificate");
            None
        }
    }
}

/// `permit` is one of the `max_handshakes`; it is released once TLS has
/// authenticated the peer (or failed), not held for the session.
async fn meta_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    addr: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let tls = accept_tls(&shared, "meta", tcp, addr).await;
    drop(permit);
    let Some((tls, fp)) = tls else {
        return;
    };
    // Removed from the table between the handshake and now: refuse as unknown.
    let Some(peer) = shared.peers.appliance(&fp) else {
        tracing::warn!(peer = %addr, fingerprint = %fp, "refused connection: appliance no longer known");
        shared.stats().refused(Refusal::UnknownPeer);
        return;
    };
    // The uuid is taken from the pinned certificate, never from the hello alone:
    // a hello is just a claim any trusted appliance could make.
    let Some(uuid) = identity::peer_uuid(tls.get_ref().1) else {
        tracing::warn!(peer = %addr, fingerprint = %fp, appliance = %peer.name,
            "refused connection: its certificate names no appliance uuid (<uuid>.ferry.invalid)");
        return;
    };
    serve_meta(&shared, tls, peer, uuid, addr).await;
}

async fn data_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    addr: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let wake = read_threshold::hint(&tcp, DATA_READ_BUFFER);
    let tcp = BufReader::with_capacity(DATA_READ_BUFFER, tcp);
    let tls = accept_tls(&shared, "data", tcp, addr).await;
    drop(permit);
    if let Some((tls, fp)) = tls {
        serve_data(&shared, tls, fp, addr, wake).await;
    }
}

/// Reads a data connection's hello and hands the connection to the session that
/// announced its id, if `peer` is that session's peer. Anything else is logged
/// and dropped. `wake` tunes when reads of the stream wake (see
/// [`ChunkReader::waking`]).
pub async fn serve_data<S>(
    shared: &Shared,
    stream: S,
    peer: Fingerprint,
    addr: SocketAddr,
    wake: Option<WaitHint>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut boxed: DataStream = Box::new(stream);
    let after = shared.config.handshake_timeout;
    let hello = match timeout(after, read_data_hello(&mut boxed)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            tracing::warn!(peer = %addr, error = %e, "dropped data connection: bad hello");
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %addr, "dropped data connection: no hello within {after:?}");
            return;
        }
    };
    let session = hello.session;
    let taken = shared.take_pending(session, |p| {
        if p.peer == peer.to_string() {
            Ok(())
        } else {
            // Left waiting: another appliance must not be able to fail someone's receive.
            Err(RouteError::OtherPeer {
                session,
                fingerprint: peer.to_string(),
            })
        }
    });
    let pending = match taken {
        Ok(p) => p,
        Err(why) => {
            tracing::warn!(peer = %addr, fingerprint = %peer, "dropped data connection: {why}");
            return;
        }
    };
    // The stream continues exactly where the receiver's copy ends, and is
    // hashed on from there, so Commit's hash covers it all.
    let expected = pending.prefix.offset();
    let handed = if hello.offset != expected {
        tracing::warn!(peer = %addr, %session, offset = hello.offset, expected,
            "dropped data connection: it starts at another offset than the receive holds");
        Err(RouteError::Offset {
            offset: hello.offset,
            expected,
        })
    } else {
        match ChunkReader::resume(boxed, pending.prefix) {
            Ok(reader) => {
                let reader = match wake {
                    Some(w) => reader.waking(w),
                    None => reader,
                };
                Ok(DataConn { reader, addr })
            }
            Err(e) => Err(RouteError::Reader(e.to_string())),
        }
    };
    // The session may have given up in the meantime; then nobody needs this.
    let _ = pending.tx.send(handed);
}
