//! The data path of a run: `btrfs send` into the data connection in chunks,
//! while the meta connection is watched for the receiver's verdict.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::debug;
use uuid::Uuid;

use super::connect::{Conn, Target};
use super::Error;
use crate::btrfs;
use crate::store::Store;
use crate::wire::{self, ChunkWriter, Client, Position};

/// How often a running send writes its byte counts to the history row.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How long a failed stream waits for the receiver to say why.
const REASON_WAIT: Duration = Duration::from_secs(2);

/// Bytes moved so far, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub stream_bytes: u64,
    pub wire_bytes: u64,
}

/// How the stream is compressed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Compression {
    /// zstd level; 0 sends raw.
    pub level: i32,
    /// Let the level follow the bottleneck (see `wire::Encoder::adaptive`).
    pub adaptive: bool,
}

/// Adaptive levels stay in this range: level 12 still compresses faster than
/// a 100 Mbit link carries, higher ones rarely pay for their CPU.
const ADAPTIVE_LEVELS: (i32, i32) = (1, 12);

/// What the stream carried: what the Commit claims.
pub(super) struct Sent {
    pub stream_bytes: u64,
    pub wire_bytes: u64,
    pub blake3: String,
}

/// Where progress goes: a live watcher (progress bar) and the history row;
/// `sent` keeps the last counts, which the row gets however the run ends.
pub(super) struct Report<'a> {
    pub store: &'a Store,
    pub row: i64,
    pub live: Option<&'a watch::Sender<Progress>>,
    pub sent: Progress,
}

impl Report<'_> {
    fn note(&mut self, p: Progress, noted: &mut Instant) {
        self.sent = p;
        if let Some(live) = self.live {
            live.send_replace(p);
        }
        if noted.elapsed() >= PROGRESS_EVERY {
            *noted = Instant::now();
            // Progress is for watchers; a failed write must not fail the transfer.
            if let Err(e) = self
                .store
                .set_send_progress(self.row, p.stream_bytes, p.wire_bytes)
            {
                debug!(row = self.row, error = %e, "cannot record send progress");
            }
        }
    }
}

/// Streams `send` to the data connection while listening on the meta
/// connection, where a receiver that fails says why (and keeps us alive).
pub(super) async fn stream(
    target: &Target,
    meta: &mut Client<Conn>,
    data: Conn,
    session: Uuid,
    compression: Compression,
    send: btrfs::SendStream,
    report: &mut Report<'_>,
) -> Result<Sent, Error> {
    let lost = |bytes, source| Error::Stream {
        appliance: target.name.clone(),
        bytes,
        source,
    };
    let mut writer = ChunkWriter::open(data, session, 0, compression.level)
        .await
        .map_err(|source| lost(0, source))?;
    if compression.adaptive {
        let (min, max) = ADAPTIVE_LEVELS;
        writer = writer
            .adaptive(compression.level, min, max)
            .map_err(Error::Encode)?;
    }
    let (pipe, exit) = send.into_blocking()?;
    let mut noted = Instant::now();
    let copied = {
        let copy = writer.copy_from(pipe, |p: Position| {
            let now = Progress {
                stream_bytes: p.offset,
                wire_bytes: p.wire_bytes,
            };
            report.note(now, &mut noted);
        });
        tokio::select! {
            r = copy => Ok(r),
            said = meta.interrupted() => Err(said),
        }
    };
    let bytes = report.sent.stream_bytes;
    let appliance = target.name.clone();
    match copied {
        Err(said) => return Err(stopped(appliance, bytes, said)),
        Ok(Err(wire::Error::Source(e))) => {
            // A pipe that fails to read is rare; btrfs send's exit usually says more.
            exit.finish().await?;
            return Err(Error::ReadSend(e));
        }
        Ok(Err(e)) if !e.is_temporary() => {
            // Only the network fails temporarily here; the rest (zstd, a chunk
            // over the limit, the encoder thread) is this appliance's fault.
            return Err(Error::Encode(e));
        }
        Ok(Err(source)) => {
            // A receiver that failed closes the data connection and says why on
            // the meta connection: prefer its reason to "connection lost".
            if let Ok(said) = tokio::time::timeout(REASON_WAIT, meta.interrupted()).await {
                if !matches!(said, wire::Error::Closed | wire::Error::Io(_)) {
                    return Err(stopped(appliance, bytes, said));
                }
            }
            return Err(Error::Stream {
                appliance,
                bytes,
                source,
            });
        }
        Ok(Ok(_)) => {}
    }
    // The pipe's end is only btrfs send closing it: its exit status says
    // whether the stream is whole. No End marker goes out before that.
    exit.finish().await?;
    debug!(level = writer.level(), "stream sent; final zstd level");
    let stats = writer
        .finish()
        .await
        .map_err(|source| lost(bytes, source))?;
    report.sent = Progress {
        stream_bytes: stats.raw_bytes(),
        wire_bytes: stats.wire_bytes,
    };
    Ok(Sent {
        stream_bytes: stats.raw_bytes(),
        wire_bytes: stats.wire_bytes,
        blake3: stats.blake3,
    })
}

/// What the receiver said (or failed to say) in the middle of a stream: its
/// silence is this side giving up; anything else is the receiver ending it.
fn stopped(appliance: String, bytes: u64, said: wire::Error) -> Error {
    match said {
        wire::Error::Timeout { after } => Error::Silent {
            appliance,
            bytes,
            after,
        },
        wire::Error::Io(_) | wire::Error::Closed | wire::Error::Truncated { .. } => Error::Stream {
            appliance,
            bytes,
            source: said,
        },
        source => Error::Stopped {
            appliance,
            bytes,
            source,
        },
    }
}
