//! The meta connection during a transfer: keepalives answered, the sender's
//! Commit kept when it comes early, anything else (or shutdown) ends the transfer.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};

use super::link::Link;
use super::outcome::{Failure, Seen};
use super::shared::Shared;
use crate::store::Pool;
use crate::wire::{self, Commit, Meta};

/// What a meta message means mid-transfer: `None` for the first Commit (kept
/// in `commit`), else the failure that ends the transfer after `bytes`.
fn on_meta(
    m: Result<Meta, wire::Error>,
    commit: &mut Option<Commit>,
    seen: &mut Seen,
    bytes: u64,
    peer: &str,
) -> Option<Failure> {
    match m {
        Ok(Meta::Commit(c)) if commit.is_none() && !seen.commit => {
            seen.commit = true;
            *commit = Some(c);
            None
        }
        other => Some(Failure::from_meta(other, bytes, peer)),
    }
}

/// Resolves, with the pool's name, once `pool` is no longer registered;
/// never without a pool.
async fn removed(shared: &Shared, pool: Option<&Pool>) -> String {
    match pool {
        Some(p) => {
            shared.pool_removed(p).await;
            p.name.clone()
        }
        None => std::future::pending().await,
    }
}

/// Runs `work` while reading the meta connection; the first meta event that
/// ends the transfer (or shutdown) drops `work` and is returned. `bytes`: how
/// far the stream got, for the reason.
pub(super) async fn watching<S, F>(
    s: &mut Link<'_, S>,
    work: F,
    commit: &mut Option<Commit>,
    seen: &mut Seen,
    bytes: u64,
) -> Result<F::Output, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    F: Future,
{
    let shared = s.shared;
    let pool = seen.pool.clone();
    let peer = s.peer.name().to_string();
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            m = s.conn.recv_alive() => {
                if let Some(f) = on_meta(m, commit, seen, bytes, &peer) {
                    return Err(f);
                }
            }
            () = shared.shutting_down() => return Err(Failure::shutdown()),
            name = removed(shared, pool.as_ref()) => {
                return Err(Failure::pool_removed(&name, &shared.me.name))
            }
        }
    }
}

/// Like [`watching`], but `work` always runs to its end: a meta event that ends
/// the transfer is returned beside `work`'s output. A write into btrfs receive
/// runs this way, so what it has taken is known to the byte.
pub(super) async fn holding<S, F>(
    s: &mut Link<'_, S>,
    work: F,
    commit: &mut Option<Commit>,
    seen: &mut Seen,
    bytes: u64,
) -> (F::Output, Option<Failure>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    F: Future,
{
    let shared = s.shared;
    let pool = seen.pool.clone();
    let peer = s.peer.name().to_string();
    tokio::pin!(work);
    loop {
        let event = tokio::select! {
            out = &mut work => return (out, None),
            m = s.conn.recv_alive() => match on_meta(m, commit, seen, bytes, &peer) {
                Some(f) => f,
                None => continue,
            },
            () = shared.shutting_down() => Failure::shutdown(),
            name = removed(shared, pool.as_ref()) => Failure::pool_removed(&name, &shared.me.name),
        };
        return (work.await, Some(event));
    }
}
