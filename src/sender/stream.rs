//! The data path of a run: `btrfs send` into the data connection in chunks,
//! while the meta connection is watched for the receiver's verdict.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::debug;

use super::connect::{Conn, Target};
use super::Error;
use crate::btrfs;
use crate::store::{Expected, Store};
use crate::wire::{self, ChunkWriter, Client, Position, Prefix, Ready, Throttle, CHUNK_SIZE};

/// How often a running send writes its byte counts to the history row.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How long a failed stream waits for the receiver to say why.
const REASON_WAIT: Duration = Duration::from_secs(2);

/// Bytes moved so far, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the btrfs send stream sent, uncompressed.
    pub stream_bytes: u64,
    /// Bytes written to the data connection: compressed chunks and their headers.
    pub wire_bytes: u64,
    /// What the run expects the stream to come to, when it has a basis.
    pub expected: Option<Expected>,
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
    /// Wire bytes of this run's earlier connections (before a resume).
    pub wire_before: u64,
    /// What the run expects the stream to come to; goes out with every count.
    pub expected: Option<Expected>,
}

impl Report<'_> {
    /// Called for every chunk on the data path: hands the counts over, never waits.
    fn note(&mut self, p: Progress, row: &RowProgress) {
        let p = Progress {
            expected: self.expected,
            ..p
        };
        self.sent = p;
        if let Some(live) = self.live {
            live.send_replace(p);
        }
        row.tx.send_replace(p);
    }
}

/// The history row's byte counts, written by a task of its own at most once per
/// [`PROGRESS_EVERY`] over a connection of its own: the data path only hands over
/// the latest counts, so a slow or locked database never stalls the stream.
/// Dropping it stops the writer.
pub(super) struct RowProgress {
    tx: watch::Sender<Progress>,
}

impl RowProgress {
    /// Starts the writer for send row `row` of `store`'s database. Without a
    /// second connection there is no row progress, only a debug line: progress
    /// is for watchers and must not fail the transfer.
    pub(super) fn start(store: &Store, row: i64) -> Self {
        let (tx, rx) = watch::channel(Progress::default());
        match store.reopen() {
            Ok(own) => {
                tokio::spawn(record(Arc::new(own), row, rx));
            }
            Err(e) => debug!(row, error = %e, "cannot record send progress"),
        }
        RowProgress { tx }
    }
}

/// Writes the newest counts once per [`PROGRESS_EVERY`] while they change, until
/// the [`RowProgress`] is dropped. A write that lands after the row was closed
/// changes nothing (the store only updates running rows).
async fn record(store: Arc<Store>, row: i64, mut rx: watch::Receiver<Progress>) {
    let mut written = Progress::default();
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now, when there is nothing to write yet.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = rx.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        }
        let now = *rx.borrow_and_update();
        if now == written {
            continue;
        }
        let db = Arc::clone(&store);
        let wrote = tokio::task::spawn_blocking(move || {
            db.set_send_progress(row, now.stream_bytes, now.wire_bytes)
        })
        .await;
        match wrote {
            Ok(Ok(())) => written = now,
            Ok(Err(e)) => debug!(row, error = %e, "cannot record send progress"),
            Err(e) => debug!(row, error = %e, "send progress writer failed"),
        }
    }
}

/// Streams `send` to the data connection while listening on the meta
/// connection, where a receiver that fails says why (and keeps us alive).
/// When `ready` continues a parked receive, the stream's first bytes are read
/// and hashed here, not sent, and must be the receiver's prefix exactly.
#[allow(clippy::too_many_arguments)]
pub(super) async fn stream(
    target: &Target,
    meta: &mut Client<Conn>,
    data: Conn,
    ready: &Ready,
    compression: Compression,
    throttles: &[Throttle],
    send: btrfs::SendStream,
    report: &mut Report<'_>,
) -> Result<Sent, Error> {
    let lost = |bytes, source| Error::Stream {
        appliance: target.name.clone(),
        bytes,
        source,
    };
    let (pipe, exit) = send.into_blocking()?;
    let (pipe, mut writer) = match &ready.resume {
        None => {
            let writer = ChunkWriter::open(data, ready.session, 0, compression.level)
                .await
                .map_err(|source| lost(0, source))?;
            (pipe, writer)
        }
        Some(at) => {
            let (pipe, prefix) = read_prefix(pipe, at.offset).await?;
            if prefix.offset() != at.offset || prefix.digest() != at.blake3 {
                return Err(Error::ResumeMismatch {
                    appliance: target.name.clone(),
                    offset: at.offset,
                    got: prefix.offset(),
                });
            }
            debug!(
                offset = at.offset,
                "the regenerated stream matches the receiver's prefix"
            );
            let writer = ChunkWriter::resume(data, ready.session, prefix, compression.level)
                .await
                .map_err(|source| lost(at.offset, source))?;
            (pipe, writer)
        }
    };
    if compression.adaptive {
        let (min, max) = ADAPTIVE_LEVELS;
        writer = writer
            .adaptive(compression.level, min, max)
            .map_err(Error::Encode)?;
    }
    let mut writer = writer.throttled(throttles.to_vec());
    let row = RowProgress::start(report.store, report.row);
    let wire_before = report.wire_before;
    let copied = {
        let copy = writer.copy_from(pipe, |p: Position| {
            let now = Progress {
                stream_bytes: p.offset,
                wire_bytes: wire_before.saturating_add(p.wire_bytes),
                expected: None,
            };
            report.note(now, &row);
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
        stream_bytes: stats.end,
        wire_bytes: report.wire_before.saturating_add(stats.wire_bytes),
        expected: report.expected,
    };
    // The hash covers the whole stream, a resumed prefix included.
    Ok(Sent {
        stream_bytes: stats.hashed_bytes(),
        wire_bytes: report.sent.wire_bytes,
        blake3: stats.blake3,
    })
}

/// Reads the first `offset` bytes of the stream from `pipe` and hashes them,
/// off the async workers (a pipe read blocks). Fewer when the stream is shorter.
async fn read_prefix(mut pipe: File, offset: u64) -> Result<(File, Prefix), Error> {
    let hashed = tokio::task::spawn_blocking(move || {
        let mut prefix = Prefix::new();
        let mut buf = vec![0u8; CHUNK_SIZE];
        while prefix.offset() < offset {
            let left = usize::try_from(offset - prefix.offset()).unwrap_or(usize::MAX);
            let want = left.min(buf.len());
            let n = pipe.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            prefix
                .update(&buf[..n])
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok::<_, std::io::Error>((pipe, prefix))
    })
    .await
    .map_err(|e| Error::Crashed(e.to_string()))?;
    hashed.map_err(Error::ReadSend)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewSend, SendFilter};

    fn row_bytes(store: &Store) -> (u64, u64) {
        let rows = store.send_history(&SendFilter::default()).expect("history");
        (rows[0].attempt.stream_bytes, rows[0].attempt.wire_bytes)
    }

    /// Pins: the history row was written inside the copy callback, so a locked
    /// database stalled the stream for up to the busy timeout on every write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_database_never_stalls_the_data_path() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::create(dir.path()).expect("store");
        let row = store
            .begin_send(&NewSend {
                task_id: None,
                task: "a",
                target: "nas2",
                share: "photos",
            })
            .expect("begin");
        // Another process holds the write lock for a while.
        let other = rusqlite::Connection::open(store.path()).expect("open");
        other.execute_batch("BEGIN EXCLUSIVE").expect("lock");

        let progress = RowProgress::start(&store, row);
        let mut report = Report {
            store: &store,
            row,
            live: None,
            sent: Progress::default(),
            wire_before: 0,
            expected: None,
        };
        let started = std::time::Instant::now();
        let mut last = Progress::default();
        for i in 1..=30u64 {
            last = Progress {
                stream_bytes: i << 20,
                wire_bytes: i << 19,
                expected: None,
            };
            report.note(last, &progress);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Three seconds of chunks, with writes due every second: none waited.
        assert!(started.elapsed() < Duration::from_millis(3000 + 500));
        assert_eq!(report.sent, last);

        other.execute_batch("COMMIT").expect("unlock");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while row_bytes(&store) != (last.stream_bytes, last.wire_bytes) {
            assert!(
                std::time::Instant::now() < deadline,
                "the row never got the last counts: {:?}",
                row_bytes(&store)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(progress);
    }
}
