//! The data port's chunk stream: the sender's `ChunkWriter` (probe, compress,
//! frame) and the receiver's `ChunkReader` (check offsets, decompress, hash).

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;
use zstd::bulk::{Compressor, Decompressor};

use super::adapt::Adapt;
use super::frame::write_frame;
use super::meta::{read_data_hello, DataHello};
use super::Error;

/// Uncompressed bytes per chunk the sender aims for on a fast link: large
/// enough that per-chunk costs (header, syscalls, context reset) vanish, small
/// enough that the sender, the network and the receiver all work at once.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Chunk size on a slow link, where ratio matters more than overlap. Measured
/// on a send stream of 550 MB of documents and sources at zstd level 3: 1 MiB
/// chunks came to 121 MiB, 4 MiB chunks to 108 MiB (one zstd stream: 105 MiB).
pub const SLOW_LINK_CHUNK_SIZE: usize = 4 << 20;

/// Largest `raw_len` or `wire_len` a reader accepts, checked before allocating.
pub const MAX_CHUNK: usize = 4 << 20;

const TAG_CHUNK: u8 = 1;
const TAG_END: u8 = 2;
/// tag + offset + raw_len + codec + wire_len
const CHUNK_HEADER: usize = 1 + 8 + 4 + 1 + 4;
const END_LEN: usize = 1 + 8;

/// How one chunk's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    Raw = 0,
    /// One self-contained zstd frame, so any chunk decodes on its own.
    Zstd = 1,
}

/// Counters for one data connection; `blake3` and `raw_bytes` feed `Commit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// Offset of the first byte this connection carried.
    pub start: u64,
    /// Offset after the last byte (the End marker's total, once finished).
    pub end: u64,
    /// Every byte written to or read from the connection after the hello.
    pub wire_bytes: u64,
    pub chunks: u64,
    pub zstd_chunks: u64,
    /// Hex blake3 of the uncompressed bytes from `start` to `end`.
    pub blake3: String,
}

impl StreamStats {
    pub fn raw_bytes(&self) -> u64 {
        self.end - self.start
    }
}

#[derive(Debug)]
struct Counters {
    start: u64,
    offset: u64,
    wire_bytes: u64,
    chunks: u64,
    zstd_chunks: u64,
    hasher: blake3::Hasher,
}

impl Counters {
    fn new(start: u64) -> Self {
        Counters {
            start,
            offset: start,
            wire_bytes: 0,
            chunks: 0,
            zstd_chunks: 0,
            hasher: blake3::Hasher::new(),
        }
    }

    fn record(&mut self, raw: &[u8], codec: Codec, wire: usize) -> Result<(), Error> {
        self.offset =
            self.offset
                .checked_add(raw.len() as u64)
                .ok_or_else(|| Error::Malformed {
                    what: "offset overflows u64".to_owned(),
                })?;
        self.hasher.update(raw);
        self.wire_bytes += wire as u64;
        self.chunks += 1;
        self.zstd_chunks += u64::from(codec == Codec::Zstd);
        Ok(())
    }

    fn stats(&self) -> StreamStats {
        StreamStats {
            start: self.start,
            end: self.offset,
            wire_bytes: self.wire_bytes,
            chunks: self.chunks,
            zstd_chunks: self.zstd_chunks,
            blake3: self.hasher.finalize().to_hex().to_string(),
        }
    }
}

/// Grows `buf` to at least `len` and returns exactly `len` bytes of it. Only
/// grows, so after the first large chunk the hot path allocates nothing.
fn scratch(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

/// Reads until `buf` is full or the stream ends; returns how much it read.
/// Senders fill whole chunks this way: a pipe hands out 64 KiB at a time, and
/// small chunks compress worse and cost more frames.
pub async fn read_up_to<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), Error> {
    r.read_exact(buf)
        .await
        .map_err(Error::eof_is_truncated(what))?;
    Ok(())
}

/// Bytes per compressibility sample (see `ChunkWriter::worth_compressing`).
const PROBE: usize = 16 * 1024;

/// Sending half of a data connection.
pub struct ChunkWriter<W> {
    w: W,
    fixed_level: i32,
    compressor: Option<Compressor<'static>>,
    /// zstd's fastest level, run on samples to skip chunks that will not shrink.
    probe: Option<Compressor<'static>>,
    pbuf: Vec<u8>,
    counters: Counters,
    zbuf: Vec<u8>,
    inbuf: Vec<u8>,
    adapt: Option<Adapt>,
}

impl<W: AsyncWrite + Unpin> ChunkWriter<W> {
    /// `level` 0 sends everything raw; any other value is a zstd level
    /// (negative ones are zstd's fast levels).
    pub fn new(w: W, offset: u64, level: i32) -> Result<Self, Error> {
        let (compressor, probe) = match level {
            0 => (None, None),
            l => (
                Some(Compressor::new(l).map_err(Error::Zstd)?),
                Some(Compressor::new(1).map_err(Error::Zstd)?),
            ),
        };
        Ok(ChunkWriter {
            fixed_level: level,
            w,
            compressor,
            probe,
            pbuf: Vec::new(),
            counters: Counters::new(offset),
            zbuf: Vec::new(),
            inbuf: Vec::new(),
            adapt: None,
        })
    }

    /// Lets the level move between `min` and `max` with what the chunks cost:
    /// up while the network is the bottleneck, down while compression is.
    /// Without compression (level 0) this changes nothing.
    pub fn adaptive(mut self, start: i32, min: i32, max: i32) -> Self {
        if self.compressor.is_some() {
            self.adapt = Some(Adapt::new(start, min, max));
            if let Some(c) = self.compressor.as_mut() {
                // A level the adapter cannot reach would never be left.
                let _ = c.set_compression_level(start.clamp(min, max));
            }
        }
        self
    }

    /// How many bytes the next chunk should carry: big chunks compress better,
    /// small ones overlap better, so an adaptive writer that found the link to
    /// be the bottleneck (its level above the starting one) asks for big ones.
    pub fn preferred_chunk(&self) -> usize {
        match &self.adapt {
            Some(a) if a.level() > self.fixed_level => SLOW_LINK_CHUNK_SIZE,
            _ => CHUNK_SIZE,
        }
    }

    /// The zstd level the next chunk will be compressed at (0: off).
    pub fn level(&self) -> i32 {
        match (&self.adapt, &self.compressor) {
            (Some(a), _) => a.level(),
            (None, Some(_)) => self.fixed_level,
            (None, None) => 0,
        }
    }

    /// Sends the [`DataHello`] for `session`, then returns a writer.
    pub async fn open(w: W, session: Uuid, offset: u64, level: i32) -> Result<Self, Error> {
        let mut writer = Self::new(w, offset, level)?;
        write_frame(&mut writer.w, &DataHello::new(session, offset)).await?;
        Ok(writer)
    }

    /// Sends `data` as one chunk, compressed when that makes it smaller.
    /// Returns the codec used.
    pub async fn write_chunk(&mut self, data: &[u8]) -> Result<Codec, Error> {
        let raw_len = u32::try_from(data.len())
            .ok()
            .filter(|_| data.len() <= MAX_CHUNK)
            .ok_or(Error::ChunkTooLarge {
                offset: self.counters.offset,
                field: "raw_len",
                len: data.len() as u64,
                max: MAX_CHUNK,
            })?;
        let mut codec = Codec::Raw;
        let worth_it = self.worth_compressing(data)?;
        let started = Instant::now();
        if let Some(c) = self.compressor.as_mut().filter(|_| worth_it) {
            self.zbuf.clear();
            self.zbuf
                .reserve(zstd::zstd_safe::compress_bound(data.len()));
            let n = c
                .compress_to_buffer(data, &mut self.zbuf)
                .map_err(Error::Zstd)?;
            // Incompressible data grows under zstd; sending it raw is cheaper
            // on both ends.
            if n < data.len() {
                codec = Codec::Zstd;
            }
        }
        let payload = match codec {
            Codec::Raw => data,
            Codec::Zstd => &self.zbuf[..],
        };
        let mut header = [0u8; CHUNK_HEADER];
        header[0] = TAG_CHUNK;
        header[1..9].copy_from_slice(&self.counters.offset.to_be_bytes());
        header[9..13].copy_from_slice(&raw_len.to_be_bytes());
        header[13] = codec as u8;
        // payload.len() <= data.len() <= MAX_CHUNK, checked above.
        header[14..18].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        let compressing = if worth_it {
            started.elapsed()
        } else {
            Duration::ZERO
        };
        let writing = Instant::now();
        self.w.write_all(&header).await?;
        self.w.write_all(payload).await?;
        let writing = writing.elapsed();
        self.counters
            .record(data, codec, CHUNK_HEADER + payload.len())?;
        if let Some(level) = self
            .adapt
            .as_mut()
            .and_then(|a| a.record(compressing, writing, worth_it))
        {
            if let Some(c) = self.compressor.as_mut() {
                c.set_compression_level(level).map_err(Error::Zstd)?;
            }
        }
        Ok(codec)
    }

    /// Whether compressing `data` is likely to pay. Trying zstd on a chunk of
    /// already-compressed media costs as much CPU as the rest of the pipeline
    /// together, so two samples are first compressed at zstd's fastest level;
    /// if neither shrinks by a tenth, the chunk goes raw.
    fn worth_compressing(&mut self, data: &[u8]) -> Result<bool, Error> {
        let Some(probe) = self.probe.as_mut() else {
            return Ok(false);
        };
        if data.len() < 4 * PROBE {
            return Ok(true);
        }
        let middle = data.len() / 2;
        for sample in [&data[..PROBE], &data[middle..middle + PROBE]] {
            self.pbuf.clear();
            self.pbuf
                .reserve(zstd::zstd_safe::compress_bound(sample.len()));
            let n = probe
                .compress_to_buffer(sample, &mut self.pbuf)
                .map_err(Error::Zstd)?;
            if n * 10 < sample.len() * 9 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Sends everything `r` yields in [`CHUNK_SIZE`] chunks, filling each
    /// chunk completely (a pipe hands out 64 KiB at a time, which would
    /// otherwise make small chunks that compress worse). Returns bytes copied.
    pub async fn copy_from<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<u64, Error> {
        let mut buf = std::mem::take(&mut self.inbuf);
        buf.resize(CHUNK_SIZE, 0);
        let result = async {
            let mut copied = 0u64;
            loop {
                let filled = read_up_to(r, &mut buf).await?;
                if filled == 0 {
                    return Ok(copied);
                }
                self.write_chunk(&buf[..filled]).await?;
                copied += filled as u64;
                if filled < buf.len() {
                    return Ok(copied);
                }
            }
        }
        .await;
        self.inbuf = buf;
        result
    }

    pub fn stats(&self) -> StreamStats {
        self.counters.stats()
    }

    /// Sends the End marker, flushes and shuts the connection down.
    pub async fn finish(mut self) -> Result<StreamStats, Error> {
        let mut end = [0u8; END_LEN];
        end[0] = TAG_END;
        end[1..].copy_from_slice(&self.counters.offset.to_be_bytes());
        self.w.write_all(&end).await?;
        self.w.flush().await?;
        self.counters.wire_bytes += END_LEN as u64;
        // Everything is delivered once flushed; the receiver's verdict comes
        // over the meta port, so a failing close must not fail the transfer.
        let _ = self.w.shutdown().await;
        Ok(self.counters.stats())
    }
}

/// Receiving half of a data connection. After an error the position in the
/// stream is unknown: drop the connection.
pub struct ChunkReader<R> {
    r: R,
    decompressor: Decompressor<'static>,
    counters: Counters,
    wire: Vec<u8>,
    out: Vec<u8>,
    done: bool,
}

impl<R: AsyncRead + Unpin> ChunkReader<R> {
    /// A reader expecting the first chunk at `offset`.
    pub fn new(r: R, offset: u64) -> Result<Self, Error> {
        Ok(ChunkReader {
            r,
            decompressor: Decompressor::new().map_err(Error::Zstd)?,
            counters: Counters::new(offset),
            wire: Vec::new(),
            out: Vec::new(),
            done: false,
        })
    }

    /// Reads the [`DataHello`], then returns it with a reader starting at its offset.
    pub async fn open(mut r: R) -> Result<(DataHello, Self), Error> {
        let hello = read_data_hello(&mut r).await?;
        let reader = Self::new(r, hello.offset)?;
        Ok((hello, reader))
    }

    /// The next chunk's uncompressed bytes, or `None` after a verified End.
    /// The slice is only valid until the next call.
    pub async fn next_chunk(&mut self) -> Result<Option<&[u8]>, Error> {
        if self.done {
            return Ok(None);
        }
        let tag = self.r.read_u8().await.map_err(Error::eof_is_truncated(
            "data stream, before its end marker",
        ))?;
        match tag {
            TAG_END => {
                let mut total = [0u8; END_LEN - 1];
                fill(&mut self.r, &mut total, "end marker").await?;
                let announced = u64::from_be_bytes(total);
                if announced != self.counters.offset {
                    return Err(Error::TotalMismatch {
                        announced,
                        received: self.counters.offset,
                    });
                }
                self.counters.wire_bytes += END_LEN as u64;
                self.done = true;
                Ok(None)
            }
            TAG_CHUNK => self.read_chunk().await.map(Some),
            t => Err(Error::Malformed {
                what: format!("unknown frame tag {t}"),
            }),
        }
    }

    async fn read_chunk(&mut self) -> Result<&[u8], Error> {
        let mut h = [0u8; CHUNK_HEADER - 1];
        fill(&mut self.r, &mut h, "chunk header").await?;
        let [o0, o1, o2, o3, o4, o5, o6, o7, r0, r1, r2, r3, codec, w0, w1, w2, w3] = h;
        let offset = u64::from_be_bytes([o0, o1, o2, o3, o4, o5, o6, o7]);
        let raw_len = u32::from_be_bytes([r0, r1, r2, r3]) as usize;
        let wire_len = u32::from_be_bytes([w0, w1, w2, w3]) as usize;
        for (field, len) in [("raw_len", raw_len), ("wire_len", wire_len)] {
            if len > MAX_CHUNK {
                return Err(Error::ChunkTooLarge {
                    offset,
                    field,
                    len: len as u64,
                    max: MAX_CHUNK,
                });
            }
        }
        if offset != self.counters.offset {
            return Err(Error::OffsetMismatch {
                expected: self.counters.offset,
                got: offset,
            });
        }
        let codec = match codec {
            0 if wire_len == raw_len => Codec::Raw,
            1 => Codec::Zstd,
            c => {
                return Err(Error::Malformed {
                    what: format!(
                        "chunk at offset {offset} has codec {c}, raw_len {raw_len}, wire_len {wire_len}"
                    ),
                })
            }
        };
        match codec {
            Codec::Raw => fill(&mut self.r, scratch(&mut self.out, raw_len), "chunk").await?,
            Codec::Zstd => {
                fill(&mut self.r, scratch(&mut self.wire, wire_len), "chunk").await?;
                // The output slice is exactly raw_len long: a payload that
                // would expand beyond it fails instead of allocating.
                let out = scratch(&mut self.out, raw_len);
                let got = self
                    .decompressor
                    .decompress_to_buffer(&self.wire[..wire_len], out)
                    .map_err(|e| Error::Decompress {
                        offset,
                        reason: e.to_string(),
                    })?;
                if got != raw_len {
                    return Err(Error::SizeMismatch {
                        offset,
                        expected: raw_len,
                        got,
                    });
                }
            }
        }
        let raw = &self.out[..raw_len];
        self.counters.record(raw, codec, CHUNK_HEADER + wire_len)?;
        Ok(raw)
    }

    /// Writes every chunk to `w` (e.g. `btrfs receive`'s stdin) until a
    /// verified End, then flushes `w`.
    pub async fn copy_to<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
    ) -> Result<StreamStats, Error> {
        while let Some(chunk) = self.next_chunk().await? {
            w.write_all(chunk).await?;
        }
        w.flush().await?;
        Ok(self.stats())
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn stats(&self) -> StreamStats {
        self.counters.stats()
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
