//! A TCP relay between a sender and a receiver on 127.0.0.1 that a test can cut:
//! every connection through it is dropped at once, as when a NAT or a VPN resets,
//! while new connections are accepted again. It counts the bytes it relayed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    cuts: watch::Sender<u64>,
    /// Bytes relayed toward the receiver.
    pub upstream: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Relays connections made to [`Proxy::addr`] to `to`.
    pub async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (cuts, _) = watch::channel(0u64);
        let upstream = Arc::new(AtomicU64::new(0));
        let (tx, counted) = (cuts.clone(), upstream.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut cut = tx.subscribe();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = relay(client, server, counted) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            cuts,
            upstream,
            task,
        }
    }

    /// Drops every connection open through the relay now.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn upstream_bytes(&self) -> u64 {
        self.upstream.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, up: Arc<AtomicU64>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let upward = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            up.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let downward = tokio::io::copy(&mut sr, &mut cw);
    tokio::select! {
        _ = upward => {}
        _ = downward => {}
    }
}
