//! The sender's side of a chunk: sample, compress, hash, frame. Synchronous and
//! CPU-bound, so [`super::ChunkWriter::copy_from`] runs it on a thread of its own.

use std::time::{Duration, Instant};

use zstd::bulk::Compressor;
use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
use zstd::zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

use super::adapt::{Adapt, Timing};
use super::chunk::{
    end_marker, header, zstd_error, Codec, Counters, Prefix, StreamStats, CHUNK_HEADER, END_LEN,
    MAX_CHUNK, WINDOW_LOG,
};
use super::Error;

/// Compressibility samples per chunk, and bytes per sample (see
/// `Zstd::worth_compressing`): 3% of a 1 MiB chunk in all.
const PROBES: usize = 8;
const PROBE: usize = 4 * 1024;

/// One encoded chunk: its header, and whether the payload is the input as is
/// (`Raw`) or what `encode` left in its `packed` buffer.
#[derive(Debug, Clone, Copy)]
pub struct Encoded {
    pub header: [u8; CHUNK_HEADER],
    pub codec: Codec,
    /// Time spent compressing (zero when the sample said not to try).
    pub compressing: Duration,
}

/// Turns input into chunks and keeps the stream's counters.
pub struct Encoder {
    zstd: Option<Zstd>,
    counters: Counters,
}

struct Zstd {
    /// The connection's one zstd stream: each chunk is a flushed piece of it.
    cctx: CCtx<'static>,
    /// zstd's fastest level, run on samples to skip chunks that will not shrink.
    probe: Compressor<'static>,
    pbuf: Vec<u8>,
    level: i32,
    /// Where the level goes next. Single-threaded zstd silently keeps the
    /// frame's level when told another mid-frame, so the chunk after a
    /// decision ends the frame, and only then is the level set.
    next_level: Option<i32>,
    adapt: Option<Adapt>,
}

impl Encoder {
    /// An encoder whose first chunk starts at `offset`. `level` 0 sends
    /// everything raw; any other value is a zstd level (negative ones are
    /// zstd's fast levels).
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] when zstd cannot set up a context at `level`.
    pub fn new(offset: u64, level: i32) -> Result<Self, Error> {
        Self::with_counters(Counters::new(offset), level)
    }

    /// An encoder continuing the stream after `prefix`: its hash covers the
    /// prefix too, so the stream's digest at the end is the whole stream's.
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] when zstd cannot set up a context at `level`.
    pub fn resume(prefix: Prefix, level: i32) -> Result<Self, Error> {
        Self::with_counters(Counters::resume(prefix), level)
    }

    fn with_counters(counters: Counters, level: i32) -> Result<Self, Error> {
        let zstd = match level {
            0 => None,
            l => Some(Zstd::new(l)?),
        };
        Ok(Encoder { zstd, counters })
    }

    /// Lets the level move between `min` and `max` with the bottleneck: up
    /// while the network makes the encoder wait, down while the encoder makes
    /// the network wait. Without compression (level 0) this changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] when zstd refuses a level in `min..=max`.
    pub fn adaptive(&mut self, start: i32, min: i32, max: i32) -> Result<(), Error> {
        if let Some(z) = self.zstd.as_mut() {
            let adapt = Adapt::new(start, min, max);
            z.set_level(adapt.level())?;
            z.adapt = Some(adapt);
        }
        Ok(())
    }

    /// The zstd level of the current frame (0: off).
    pub fn level(&self) -> i32 {
        self.zstd.as_ref().map_or(0, |z| z.level)
    }

    /// Encodes `data` as one chunk. A compressed payload is left in `packed`;
    /// a `Raw` chunk's payload is `data` itself.
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] when compression fails, [`Error::ChunkTooLarge`] for `data` over
    /// [`MAX_CHUNK`](super::MAX_CHUNK).
    pub fn encode(&mut self, data: &[u8], packed: &mut Vec<u8>) -> Result<Encoded, Error> {
        let raw_len = u32::try_from(data.len())
            .ok()
            .filter(|_| data.len() <= MAX_CHUNK)
            .ok_or(Error::ChunkTooLarge {
                offset: self.counters.offset(),
                field: "raw_len",
                len: data.len() as u64,
                max: MAX_CHUNK,
            })?;
        let started = Instant::now();
        let (codec, wire_len) = match self.zstd.as_mut() {
            Some(z) => match z.worth_compressing(data)? {
                true => (Codec::ZstdStream, z.compress(data, packed)?),
                false => (Codec::Raw, data.len()),
            },
            None => (Codec::Raw, data.len()),
        };
        let compressing = match codec {
            Codec::Raw => Duration::ZERO,
            _ => started.elapsed(),
        };
        // A piece that grew (it cannot go raw: the stream's state includes
        // it) may pass MAX_CHUNK only for an input close to it, which
        // `copy_from`'s 1 MiB chunks never are; receivers would refuse it.
        let wire_len = u32::try_from(wire_len)
            .ok()
            .filter(|_| wire_len <= MAX_CHUNK)
            .ok_or(Error::ChunkTooLarge {
                offset: self.counters.offset(),
                field: "wire_len",
                len: wire_len as u64,
                max: MAX_CHUNK,
            })?;
        let header = header(self.counters.offset(), raw_len, codec, wire_len);
        self.counters
            .record(data, codec, CHUNK_HEADER + wire_len as usize)?;
        Ok(Encoded {
            header,
            codec,
            compressing,
        })
    }

    /// Tells the adaptive level how long the chunk `e` waited for its input
    /// (`reading`) and then for the network to take it (`waiting`).
    pub fn waited(&mut self, e: &Encoded, reading: Duration, waiting: Duration) {
        let Some(z) = self.zstd.as_mut() else { return };
        let compressed = e.codec != Codec::Raw;
        let t = Timing {
            reading,
            compressing: e.compressing,
            waiting,
        };
        if let Some(level) = z.adapt.as_mut().and_then(|a| a.record(t, compressed)) {
            tracing::debug!(
                from = z.level,
                to = level,
                "zstd level follows the bottleneck"
            );
            z.next_level = Some(level);
        }
    }

    /// The End marker for everything encoded so far.
    pub fn end(&mut self) -> [u8; END_LEN] {
        self.counters.wire_bytes += END_LEN as u64;
        end_marker(self.counters.offset())
    }

    /// Offset after the last chunk and bytes on the wire so far: cheap, unlike
    /// [`Encoder::stats`], which finalizes the hash.
    pub fn position(&self) -> (u64, u64) {
        (self.counters.offset(), self.counters.wire_bytes)
    }

    pub fn stats(&self) -> StreamStats {
        self.counters.stats()
    }
}

impl Zstd {
    fn new(level: i32) -> Result<Self, Error> {
        let mut cctx = CCtx::try_create()
            .ok_or_else(|| Error::Zstd(std::io::Error::other("cannot allocate a zstd context")))?;
        cctx.set_parameter(CParameter::WindowLog(WINDOW_LOG))
            .map_err(|c| Error::Zstd(zstd_error(c)))?;
        let mut z = Zstd {
            cctx,
            probe: Compressor::new(1).map_err(Error::Zstd)?,
            pbuf: Vec::new(),
            level,
            next_level: None,
            adapt: None,
        };
        z.set_level(level)?;
        Ok(z)
    }

    fn set_level(&mut self, level: i32) -> Result<(), Error> {
        self.cctx
            .set_parameter(CParameter::CompressionLevel(level))
            .map_err(|c| Error::Zstd(zstd_error(c)))?;
        self.level = level;
        Ok(())
    }

    /// Compresses `data` into `packed` as the next piece of the stream, and
    /// returns its length. The piece always goes out compressed, even in the
    /// rare case it grew: the stream's state already includes it.
    fn compress(&mut self, data: &[u8], packed: &mut Vec<u8>) -> Result<usize, Error> {
        let directive = match self.next_level {
            Some(_) => ZSTD_EndDirective::ZSTD_e_end,
            None => ZSTD_EndDirective::ZSTD_e_flush,
        };
        packed.clear();
        packed.reserve(zstd::zstd_safe::compress_bound(data.len()));
        let mut input = InBuffer::around(data);
        loop {
            let left = {
                let mut output = OutBuffer::around_pos(packed, packed.len());
                self.cctx
                    .compress_stream2(&mut output, &mut input, directive)
                    .map_err(|c| Error::Zstd(zstd_error(c)))?
            };
            if left == 0 && input.pos() == data.len() {
                break;
            }
            packed.reserve(left.max(64 * 1024));
        }
        if let Some(level) = self.next_level.take() {
            // The frame ended with this piece: the next one starts a new frame.
            self.set_level(level)?;
        }
        Ok(packed.len())
    }

    /// Whether compressing `data` is likely to pay. Trying zstd on a chunk of
    /// already-compressed media costs as much CPU as the rest of the pipeline
    /// together, so samples spread over the chunk are first compressed at
    /// zstd's fastest level; if none shrinks by a tenth, the chunk goes raw.
    /// One shrinking sample is enough: a chunk of small files is often part
    /// media, part text, and two samples sent such chunks raw that would have
    /// shrunk by half (8% more wire on the bench's source tree).
    fn worth_compressing(&mut self, data: &[u8]) -> Result<bool, Error> {
        if data.len() < PROBES * PROBE * 2 {
            return Ok(true);
        }
        let stride = (data.len() - PROBE) / (PROBES - 1);
        for i in 0..PROBES {
            let sample = &data[i * stride..i * stride + PROBE];
            self.pbuf.clear();
            self.pbuf
                .reserve(zstd::zstd_safe::compress_bound(sample.len()));
            let n = self
                .probe
                .compress_to_buffer(sample, &mut self.pbuf)
                .map_err(Error::Zstd)?;
            if n * 10 < sample.len() * 9 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
