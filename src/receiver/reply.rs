//! The receiver's answers that are not a request's payload: refusals, busy
//! refusals, and best-effort last words on a connection being given up.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;

use crate::wire::{Meta, MetaConn, Refused};

/// A refusal the sender should not retry as is.
pub(super) fn refused(reason: impl ToString) -> Meta {
    Meta::Refused(Refused {
        reason: reason.to_string(),
        busy: false,
        retry_after: None,
    })
}

/// A temporary refusal: the sender retries soon and must not read it as an answer.
pub(super) fn busy(reason: impl ToString) -> Meta {
    Meta::Refused(Refused {
        reason: reason.to_string(),
        busy: true,
        retry_after: None,
    })
}

/// A temporary refusal that asks the sender to wait `after` before trying again.
pub(super) fn busy_for(reason: impl ToString, after: std::time::Duration) -> Meta {
    Meta::Refused(Refused {
        reason: reason.to_string(),
        busy: true,
        retry_after: Some(after.as_secs().max(1)),
    })
}

/// The refusal for a pool this receiver does not expose.
pub(super) fn not_exposed(me: &str, pool: &str) -> Meta {
    refused(format!(
        "pool {pool} is not exposed on {me}; add it there with `ferry pool add {pool} PATH`"
    ))
}

/// The state database failed: busy, since a locked or briefly unwritable
/// database recovers by itself, and a permanent refusal would make a daily
/// task wait a day.
pub(super) fn database(e: &crate::store::Error) -> Meta {
    busy(format!("receiver state database: {e}; try again later"))
}

/// Best effort: the session ends anyway, so a failure to deliver is only logged.
pub(super) async fn tell<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut MetaConn<S>, msg: Meta) {
    let after = conn.keepalive().interval;
    match timeout(after, conn.send(&msg)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "could not deliver {}", msg.kind()),
        Err(_) => tracing::debug!("could not deliver {}: the peer is not reading", msg.kind()),
    }
}
