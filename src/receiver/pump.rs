//! Feeding btrfs receive from the data connection, chunk by chunk, with the meta
//! connection watched throughout, so that what btrfs receive took is known to
//! the byte when the stream breaks: that prefix is what a resume continues.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::link::Link;
use super::outcome::{Failure, Seen, Tell};
use super::row::Row;
use super::shared::DataStream;
use super::watch::{holding, watching};
use super::writeback::Writeback;
use crate::btrfs::{self, Receive};
use crate::wire::{self, ChunkReader, Commit, StreamStats};

/// History rows get the byte count at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How the copy into btrfs receive ended badly.
#[derive(Debug)]
pub(super) enum PumpError {
    /// The data connection broke or carried something that is not a stream.
    Data(wire::Error),
    /// Nothing arrived for the stall limit.
    ReadStalled,
    /// btrfs receive took nothing for the stall limit.
    WriteStalled,
    /// btrfs receive stopped reading its input.
    Write(std::io::Error),
    /// The meta connection ended the transfer (or shutdown did).
    Meta(Failure),
}

impl PumpError {
    /// Whether the bytes btrfs receive took are exactly the reader's prefix,
    /// and the stream broke in a way a new connection could repair: a lost
    /// connection, silence, a stall in the network. Not a bad stream, a
    /// btrfs receive in trouble, the peer's abort, or shutdown.
    pub fn resumable(&self) -> bool {
        match self {
            PumpError::Data(e) => matches!(
                e,
                wire::Error::Io(_) | wire::Error::Closed | wire::Error::Truncated { .. }
            ),
            PumpError::ReadStalled => true,
            PumpError::Meta(f) => f.tell == Tell::Lost,
            PumpError::WriteStalled | PumpError::Write(_) => false,
        }
    }
}

/// Copies chunks into btrfs receive until a verified End. Reading races the
/// meta connection (a meta event mid-read loses nothing btrfs receive has);
/// each write runs to its end even when the meta connection speaks meanwhile.
/// Every step is bounded by `stall`, so a peer that stops sending cannot hold
/// the share's lock.
#[allow(clippy::too_many_arguments)]
pub(super) async fn pump<S>(
    s: &mut Link<'_, S>,
    reader: &mut ChunkReader<DataStream>,
    proc: &mut Receive,
    row: &Row<'_>,
    stall: Duration,
    commit: &mut Option<Commit>,
    seen: &mut Seen,
    writeback: &mut Writeback,
) -> Result<StreamStats, PumpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut reported = Instant::now();
    // The stream's first bytes say its version, recorded on the row (a
    // resumed receive starts past them: its row keeps what it had).
    let mut head = Vec::with_capacity(btrfs::STREAM_HEADER_LEN);
    let from_start = reader.prefix().offset() == 0;
    loop {
        let at = reader.prefix().offset();
        let next = watching(s, timeout(stall, reader.next_chunk()), commit, seen, at).await;
        let chunk = match next {
            Err(f) => return Err(PumpError::Meta(f)),
            Ok(Err(_)) => return Err(PumpError::ReadStalled),
            Ok(Ok(Err(e))) => return Err(PumpError::Data(e)),
            Ok(Ok(Ok(None))) => break,
            Ok(Ok(Ok(Some(chunk)))) => chunk,
        };
        if from_start && head.len() < btrfs::STREAM_HEADER_LEN {
            let want = btrfs::STREAM_HEADER_LEN - head.len();
            head.extend_from_slice(&chunk[..want.min(chunk.len())]);
            if let Some(version) = btrfs::stream_version(&head) {
                row.stream_version(version);
            }
        }
        // The chunk goes into btrfs receive's pipe by reference, not copied:
        // its buffer is lent to `proc` until btrfs receive has read it.
        let len = chunk.len();
        let spare = proc.spare();
        let full = reader.take_chunk(spare);
        let (written, event) =
            holding(s, timeout(stall, proc.lend(full, len)), commit, seen, at).await;
        match written {
            Err(_) => return Err(PumpError::WriteStalled),
            Ok(Err(e)) => return Err(PumpError::Write(e)),
            Ok(Ok(())) => writeback.wrote(len),
        }
        if let Some(f) = event {
            return Err(PumpError::Meta(f));
        }
        if reported.elapsed() >= PROGRESS_EVERY {
            row.progress(&reader.stats());
            reported = Instant::now();
        }
    }
    let at = reader.prefix().offset();
    let (flushed, event) = holding(s, timeout(stall, proc.flush()), commit, seen, at).await;
    match flushed {
        Err(_) => Err(PumpError::WriteStalled),
        Ok(Err(e)) => Err(PumpError::Write(e)),
        Ok(Ok(())) => match event {
            Some(f) => Err(PumpError::Meta(f)),
            None => Ok(reader.stats()),
        },
    }
}
