//! The sender's side of a data connection: hello, chunks, end marker.
//! [`ChunkWriter::copy_from`] reads and encodes on a thread of its own, so the
//! next chunk is compressed and hashed while TLS and the network carry this one.

use std::io::{IoSlice, Read};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::chunk::{Codec, Prefix, StreamStats, CHUNK_SIZE};
use super::encode::{Encoded, Encoder};
use super::frame::write_frame;
use super::message::DataHello;
use super::throttle::{Throttle, PIECE};
use super::Error;

/// Encoded chunks waiting for the network. Enough to ride out a slow write or
/// a slow read; more only holds memory (two buffers per chunk).
const QUEUE: usize = 4;

/// Where a copy stands after each chunk the network took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Uncompressed stream offset after the chunk.
    pub offset: u64,
    /// Bytes on the wire so far, headers included.
    pub wire_bytes: u64,
}

/// Sending half of a data connection.
pub struct ChunkWriter<W> {
    w: W,
    /// Away on the encoder thread during `copy_from`; missing for good if
    /// that copy was dropped half way, which leaves the stream unusable.
    encoder: Option<Encoder>,
    packed: Vec<u8>,
    /// Bandwidth limits every byte waits for (a task's, the sender's).
    throttles: Vec<Throttle>,
}

impl<W: AsyncWrite + Unpin> ChunkWriter<W> {
    /// `level` 0 sends everything raw; any other value is a zstd level
    /// (negative ones are zstd's fast levels).
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] when zstd cannot set up a context.
    pub fn new(w: W, offset: u64, level: i32) -> Result<Self, Error> {
        Ok(ChunkWriter {
            w,
            encoder: Some(Encoder::new(offset, level)?),
            packed: Vec::new(),
            throttles: Vec::new(),
        })
    }

    /// Sends the [`DataHello`] for `session`, then returns a writer.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] sending the hello, and those of [`new`](Self::new).
    pub async fn open(w: W, session: Uuid, offset: u64, level: i32) -> Result<Self, Error> {
        let mut writer = Self::new(w, offset, level)?;
        write_frame(&mut writer.w, &DataHello::new(session, offset)).await?;
        Ok(writer)
    }

    /// Sends the [`DataHello`] for `session` at `prefix`'s offset, then returns
    /// a writer whose hash continues `prefix`: the stream resumes where the
    /// receiver's copy of it ends. The connection starts a new zstd stream.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] sending the hello; [`Error::Zstd`] setting up zstd.
    pub async fn resume(w: W, session: Uuid, prefix: Prefix, level: i32) -> Result<Self, Error> {
        let offset = prefix.offset();
        let mut writer = ChunkWriter {
            w,
            encoder: Some(Encoder::resume(prefix, level)?),
            packed: Vec::new(),
            throttles: Vec::new(),
        };
        write_frame(&mut writer.w, &DataHello::new(session, offset)).await?;
        Ok(writer)
    }

    /// Lets the level follow the bottleneck during [`ChunkWriter::copy_from`]
    /// (see [`Encoder::adaptive`]).
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] when zstd refuses a level in `min..=max`.
    pub fn adaptive(mut self, start: i32, min: i32, max: i32) -> Result<Self, Error> {
        self.encoder()?.adaptive(start, min, max)?;
        Ok(self)
    }

    /// Paces what this writer puts on the wire by `throttles` (all of them):
    /// a limited link, to the adaptive level, is a slow link.
    pub fn throttled(mut self, throttles: Vec<Throttle>) -> Self {
        self.throttles = throttles;
        self
    }

    /// The zstd level of the current frame (0: off).
    pub fn level(&self) -> i32 {
        self.encoder.as_ref().map_or(0, Encoder::level)
    }

    fn encoder(&mut self) -> Result<&mut Encoder, Error> {
        self.encoder.as_mut().ok_or_else(interrupted)
    }

    /// Sends `data` as one chunk, compressed when a sample says it pays.
    /// Returns the codec used.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] from the connection, [`Error::Zstd`] or [`Error::ChunkTooLarge`] from
    /// encoding.
    pub async fn write_chunk(&mut self, data: &[u8]) -> Result<Codec, Error> {
        let encoder = self.encoder.as_mut().ok_or_else(interrupted)?;
        let e = encoder.encode(data, &mut self.packed)?;
        let payload = match e.codec {
            Codec::Raw => data,
            _ => &self.packed[..],
        };
        write_paced(&mut self.w, &e.header, payload, &self.throttles).await?;
        Ok(e.codec)
    }

    /// Sends everything `r` yields, in chunks filled completely (a pipe hands
    /// out 64 KiB at a time; small chunks cost more frames): 64 KiB first,
    /// doubling up to [`CHUNK_SIZE`].
    /// Reading and encoding run on a blocking thread, up to [`QUEUE`] chunks
    /// ahead of the network; `progress` hears of every chunk sent. Returns the
    /// bytes copied. A failed read is [`Error::Source`].
    ///
    /// Dropping the future stops the thread after its current read, and
    /// leaves the writer unusable: part of the stream may have gone out.
    ///
    /// # Errors
    ///
    /// [`Error::Source`] when reading `r` fails (the writer stays usable), [`Error::Io`]
    /// from the connection, encoding errors ([`Error::Zstd`], [`Error::Internal`] if the
    /// encoder thread dies).
    pub async fn copy_from<R>(
        &mut self,
        r: R,
        mut progress: impl FnMut(Position),
    ) -> Result<u64, Error>
    where
        R: Read + Send + 'static,
    {
        // Until the thread hands the encoder back, the writer has none.
        let encoder = self.encoder.take().ok_or_else(interrupted)?;
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let (spent, recycled) = std_mpsc::channel();
        let worker = tokio::task::spawn_blocking(move || encode_all(encoder, r, &tx, &recycled));
        let mut sent = Ok(());
        while let Some(chunk) = rx.recv().await {
            let (header, payload) = (&chunk.encoded.header, chunk.payload());
            if let Err(e) = write_paced(&mut self.w, header, payload, &self.throttles).await {
                sent = Err(e);
                break;
            }
            progress(chunk.position);
            // The encoder may have finished and dropped its end already.
            let _ = spent.send(chunk.buffers);
        }
        // Unblocks an encoder waiting for queue space.
        drop(rx);
        let (encoder, copied) = worker
            .await
            .map_err(|e| Error::Internal(format!("the encoder thread failed: {e}")))?;
        self.encoder = Some(encoder);
        // A network error is the cause when both ends failed: the encoder then
        // only saw its queue close.
        sent?;
        copied
    }

    /// What the stream carried so far; `None` after an interrupted copy.
    pub fn stats(&self) -> Option<StreamStats> {
        self.encoder.as_ref().map(Encoder::stats)
    }

    /// Sends the End marker, flushes and shuts the connection down.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] sending End, [`Error::Internal`] when a [`copy_from`](Self::copy_from)
    /// was dropped half way (the stream's position is unknown).
    pub async fn finish(mut self) -> Result<StreamStats, Error> {
        let end = self.encoder()?.end();
        self.w.write_all(&end).await?;
        self.w.flush().await?;
        // Everything is delivered once flushed; the receiver's verdict comes
        // over the meta port, so a failing close must not fail the transfer.
        let _ = self.w.shutdown().await;
        Ok(self.encoder()?.stats())
    }
}

fn interrupted() -> Error {
    Error::Internal("the stream was left half sent by an interrupted copy".into())
}

/// Header and payload as one write: rustls makes records of both together,
/// instead of a tiny record (and packet) per header.
/// [`write_parts`], in pieces of at most [`PIECE`] bytes that each wait for
/// every throttle first.
async fn write_paced<W: AsyncWrite + Unpin>(
    w: &mut W,
    header: &[u8],
    payload: &[u8],
    throttles: &[Throttle],
) -> Result<(), Error> {
    if throttles.is_empty() {
        return write_parts(w, header, payload).await;
    }
    for part in [header, payload] {
        for piece in part.chunks(PIECE) {
            for t in throttles {
                t.take(piece.len()).await;
            }
            w.write_all(piece).await?;
        }
    }
    Ok(())
}

async fn write_parts<W: AsyncWrite + Unpin>(
    w: &mut W,
    header: &[u8],
    payload: &[u8],
) -> Result<(), Error> {
    let total = header.len() + payload.len();
    let mut done = 0;
    while done < total {
        let n = if done < header.len() {
            let parts = [IoSlice::new(&header[done..]), IoSlice::new(payload)];
            w.write_vectored(&parts).await?
        } else {
            w.write(&payload[done - header.len()..]).await?
        };
        if n == 0 {
            return Err(Error::Closed);
        }
        done += n;
    }
    Ok(())
}

/// A chunk on its way from the encoder thread to the network.
struct Chunk {
    encoded: Encoded,
    buffers: Buffers,
    len: usize,
    position: Position,
}

/// The two buffers a chunk uses, recycled once it is sent.
#[derive(Default)]
struct Buffers {
    input: Vec<u8>,
    packed: Vec<u8>,
}

impl Chunk {
    fn payload(&self) -> &[u8] {
        match self.encoded.codec {
            Codec::Raw => &self.buffers.input[..self.len],
            _ => &self.buffers.packed,
        }
    }
}

/// The encoder thread: read a chunk, encode it, queue it; hands the encoder
/// back with the outcome.
fn encode_all<R: Read>(
    mut encoder: Encoder,
    mut r: R,
    tx: &mpsc::Sender<Chunk>,
    recycled: &std_mpsc::Receiver<Buffers>,
) -> (Encoder, Result<u64, Error>) {
    let mut copied = 0u64;
    // The first chunks are small, so the receiver (and btrfs receive behind
    // it) starts within a few hundred KiB instead of after a whole chunk: on
    // a small incremental that wait is a tenth of the run.
    let mut want = FIRST_CHUNK;
    let result = loop {
        let mut buffers = recycled.try_recv().unwrap_or_default();
        if buffers.input.len() < CHUNK_SIZE {
            buffers.input.resize(CHUNK_SIZE, 0);
        }
        let reading = Instant::now();
        let len = match read_full(&mut r, &mut buffers.input[..want]) {
            Ok(0) => break Ok(copied),
            Ok(n) => n,
            Err(e) => break Err(Error::Source(e)),
        };
        let reading = reading.elapsed();
        let encoded = match encoder.encode(&buffers.input[..len], &mut buffers.packed) {
            Ok(e) => e,
            Err(e) => break Err(e),
        };
        let (offset, wire_bytes) = encoder.position();
        let chunk = Chunk {
            encoded,
            buffers,
            len,
            position: Position { offset, wire_bytes },
        };
        let queued = Instant::now();
        if tx.blocking_send(chunk).is_err() {
            break Err(Error::Closed);
        }
        let waiting = queued.elapsed().saturating_sub(QUEUE_SLACK);
        encoder.waited(&encoded, reading, waiting);
        copied += len as u64;
        if len < want {
            // read_full stops short only at the end of the input.
            break Ok(copied);
        }
        want = (want * 2).min(CHUNK_SIZE);
    };
    (encoder, result)
}

/// Size of the first chunk of a copy; each next one doubles, up to [`CHUNK_SIZE`].
const FIRST_CHUNK: usize = 64 * 1024;

/// Waits shorter than this are scheduling noise, not a network holding us up.
const QUEUE_SLACK: Duration = Duration::from_micros(200);

/// Reads until `buf` is full or the input ends; returns how much it read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
