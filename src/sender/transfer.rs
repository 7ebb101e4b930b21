//! One snapshot's way to the target: begin, the data stream, commit; and, when
//! a connection breaks and both sides can resume, the reconnects that continue it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::connect::{self, Conn, Target};
use super::stream::{self, Compression, Report, Sent};
use super::Error;
use crate::btrfs;
use crate::identity::Fingerprint;
use crate::wire::{self, Begin, Client, Commit, Feature, Hello, Keepalive, Throttle};

/// Longest wait between two reconnects while resuming.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a transfer needs to send, and to reconnect when it must.
pub(super) struct Transfer<'a> {
    pub target: &'a Target,
    pub tls: Arc<rustls::ClientConfig>,
    pub hello: Hello,
    pub my_fingerprint: Fingerprint,
    pub keepalive: Keepalive,
    pub begin: Begin,
    pub snapshot: PathBuf,
    pub parent: Option<PathBuf>,
    /// The send stream's version and whether compressed extents cross as
    /// they are: the same on every attempt, so a resumed stream is the same.
    pub send: btrfs::SendOptions,
    pub compression: Compression,
    /// How long the transfer keeps reconnecting after a break before it fails.
    pub resume_for: Duration,
    /// Bandwidth limits the data connection waits for.
    pub throttles: Vec<Throttle>,
}

/// A transfer the target confirmed.
pub(super) struct Confirmed {
    pub sent: Sent,
    pub received_uuid: uuid::Uuid,
    /// Where this run's stream started: 0, or the offset of a parked receive
    /// it continued.
    pub resumed_from: u64,
}

impl Transfer<'_> {
    /// Sends the snapshot and returns the target's confirmation. `resume`:
    /// ask at once to continue a receive the target parked. While the session
    /// has the `resume` feature, a break in the network (lost connection,
    /// silence, a busy share) reconnects with backoff and continues from what
    /// the target holds, for up to `resume_for`.
    ///
    /// # Errors
    ///
    /// The last attempt's [`Error`] when it cannot be resumed, or no longer.
    pub async fn run(
        &self,
        client: &mut Client<Conn>,
        report: &mut Report<'_>,
        mut resume: bool,
    ) -> Result<Confirmed, Error> {
        let deadline = Instant::now() + self.resume_for;
        let mut backoff = Duration::from_secs(1);
        let mut resumed_from = None;
        loop {
            let asked = resume && client.features().has(Feature::Resume);
            let attempt = self.attempt(client, report, asked).await;
            match attempt {
                Ok((offset, sent, received_uuid)) => {
                    return Ok(Confirmed {
                        sent,
                        received_uuid,
                        resumed_from: resumed_from.unwrap_or(offset),
                    })
                }
                Err((e, offset)) => {
                    resumed_from.get_or_insert(offset);
                    report.wire_before = report.sent.wire_bytes;
                    if let Error::ResumeMismatch { .. } = e {
                        warn!(target = %self.target.name, error = %e, "resume refused");
                        client.abort(e.to_string()).await;
                        resume = false;
                        continue;
                    }
                    if matches!(e, Error::Btrfs(_) | Error::ReadSend(_) | Error::Encode(_)) {
                        // This side broke, not the network: say so, or the
                        // receiver would see a lost connection and keep the
                        // receive for a resume that cannot help.
                        client.abort(e.to_string()).await;
                        return Err(e);
                    }
                    // Only a stream that got going is worth reconnecting for: a
                    // refusal or an unreachable target before the first byte is
                    // the scheduler's to retry, with its backoff and the
                    // receiver's retry_after.
                    let streaming = resume || report.sent.stream_bytes > 0;
                    if !(streaming && client.features().has(Feature::Resume) && e.is_temporary()) {
                        return Err(e);
                    }
                    warn!(target = %self.target.name, error = %e,
                        offset = report.sent.stream_bytes, "transfer interrupted; reconnecting to resume");
                    *client = self.reconnect(deadline, &mut backoff, e).await?;
                    resume = true;
                }
            }
        }
    }

    /// One Begin to Received. Returns where the stream started, with the
    /// outcome either way.
    async fn attempt(
        &self,
        client: &mut Client<Conn>,
        report: &mut Report<'_>,
        resume: bool,
    ) -> Result<(u64, Sent, uuid::Uuid), (Error, u64)> {
        let wire_err = |source| Error::Wire {
            appliance: self.target.name.clone(),
            source,
        };
        // btrfs send starts while the receiver answers Begin (its pipe holds
        // the first MiB); it is killed if the answer is not Ready. The data
        // connection waits for Ready: the receiver expects its hello within
        // the handshake timeout, and Begin may take longer (cleaning up
        // partial receives).
        let send = btrfs::send_with(&self.snapshot, self.parent.as_deref(), self.send)
            .map_err(|e| (e.into(), 0))?;
        let begin = Begin {
            resume,
            ..self.begin.clone()
        };
        let ready = client.begin(begin).await.map_err(|e| (wire_err(e), 0))?;
        let start = ready.resume.as_ref().map_or(0, |at| at.offset);
        if start > 0 {
            info!(target = %self.target.name, snapshot = %self.begin.snapshot, offset = start,
                "resuming a parked receive");
        }
        let mut data = connect::tls(self.target, self.target.data_port, self.tls.clone())
            .await
            .map_err(|e| (e, start))?;
        // rustls otherwise takes 64 KiB of plaintext per write: one syscall per
        // 64 KiB. A whole chunk at once goes out as one writev of its records.
        data.get_mut().1.set_buffer_limit(Some(2 * wire::MAX_CHUNK));
        let sent = stream::stream(
            self.target,
            client,
            data,
            &ready,
            self.compression,
            &self.throttles,
            send,
            report,
        )
        .await
        .map_err(|e| (e, start))?;
        let received = client
            .commit(Commit {
                stream_bytes: sent.stream_bytes,
                blake3: sent.blake3.clone(),
            })
            .await
            .map_err(|e| (wire_err(e), start))?;
        Ok((start, sent, received.received_uuid))
    }

    /// A new meta session after a break, retried with doubling backoff until
    /// `deadline`; past it, the break that started this (`cause`) is the error.
    async fn reconnect(
        &self,
        deadline: Instant,
        backoff: &mut Duration,
        cause: Error,
    ) -> Result<Client<Conn>, Error> {
        loop {
            let wait = (*backoff).min(deadline.saturating_duration_since(Instant::now()));
            if wait.is_zero() {
                return Err(cause);
            }
            tokio::time::sleep(wait).await;
            *backoff = (*backoff * 2).min(BACKOFF_MAX);
            let opened = connect::meta(
                self.target,
                self.tls.clone(),
                self.hello.clone(),
                self.my_fingerprint,
                self.keepalive,
            )
            .await;
            match opened {
                Ok(client) => return Ok(client),
                Err(e) if e.is_temporary() => {
                    info!(target = %self.target.name, error = %e, "reconnect failed; trying again");
                }
                Err(e) => return Err(e),
            }
        }
    }
}
