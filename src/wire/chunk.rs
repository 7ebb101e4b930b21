//! The data port's chunk format, shared by both ends: header layout, codecs,
//! and the counters (offset, wire bytes, blake3) that feed `Commit`.

use super::Error;

/// Uncompressed bytes per chunk the sender aims for: large enough that
/// per-chunk costs (header, syscalls, a wake-up per stage) vanish, small enough
/// that reading, compressing and the network all work at once. Compression
/// does not suffer from small chunks: one zstd stream runs across them.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Largest `raw_len` or `wire_len` a reader accepts, checked before allocating.
pub const MAX_CHUNK: usize = 4 << 20;

pub(super) const TAG_CHUNK: u8 = 1;
pub(super) const TAG_END: u8 = 2;
/// tag + offset + raw_len + codec + wire_len
pub(super) const CHUNK_HEADER: usize = 1 + 8 + 4 + 1 + 4;
pub(super) const END_LEN: usize = 1 + 8;

/// zstd window of a connection's stream (2^23 = 8 MiB): what the sender
/// compresses with and the most a receiver accepts, which bounds its memory.
pub(super) const WINDOW_LOG: u32 = 23;

/// How one chunk's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    Raw = 0,
    /// One self-contained zstd frame: the chunk decodes on its own.
    Zstd = 1,
    /// The next piece of the connection's zstd stream, flushed at the chunk's
    /// end: it decodes to exactly `raw_len` bytes, given every earlier piece.
    /// Matches reach across chunks, so the stream is as small as one `zstd`
    /// pipe's (independent frames per 1 MiB chunk were 12-25% larger).
    ZstdStream = 2,
}

impl Codec {
    pub(super) fn from_wire(byte: u8) -> Option<Codec> {
        [Codec::Raw, Codec::Zstd, Codec::ZstdStream]
            .into_iter()
            .find(|c| *c as u8 == byte)
    }
}

/// A chunk header, as it goes on the wire.
pub(super) fn header(offset: u64, raw_len: u32, codec: Codec, wire_len: u32) -> [u8; CHUNK_HEADER] {
    let mut h = [0u8; CHUNK_HEADER];
    h[0] = TAG_CHUNK;
    h[1..9].copy_from_slice(&offset.to_be_bytes());
    h[9..13].copy_from_slice(&raw_len.to_be_bytes());
    h[13] = codec as u8;
    h[14..18].copy_from_slice(&wire_len.to_be_bytes());
    h
}

/// The end marker: the stream's total, which must match what arrived.
pub(super) fn end_marker(total: u64) -> [u8; END_LEN] {
    let mut end = [0u8; END_LEN];
    end[0] = TAG_END;
    end[1..].copy_from_slice(&total.to_be_bytes());
    end
}

/// The first [`offset`](Prefix::offset) bytes of a stream as a running BLAKE3:
/// what a resumed connection continues from. Both ends keep one; equal
/// [`digest`](Prefix::digest)s prove they hold the same prefix.
#[derive(Debug, Clone, Default)]
pub struct Prefix {
    offset: u64,
    hasher: blake3::Hasher,
}

impl Prefix {
    /// The empty prefix: a stream's start.
    pub fn new() -> Prefix {
        Prefix::default()
    }

    /// Its length in bytes of the uncompressed send stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Hex BLAKE3 of the prefix's bytes.
    pub fn digest(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }

    /// Appends `bytes` to the prefix.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] if the offset would overflow a u64.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.offset =
            self.offset
                .checked_add(bytes.len() as u64)
                .ok_or_else(|| Error::Malformed {
                    what: "offset overflows u64".to_owned(),
                })?;
        self.hasher.update(bytes);
        Ok(())
    }
}

/// Counters for one data connection; `blake3` and `end` feed `Commit`.
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
    /// Where hashing began: 0 for a connection that resumed a [`Prefix`] (or
    /// started the stream), `start` for one opened mid-stream without one.
    pub hashed_from: u64,
    /// Hex blake3 of the uncompressed bytes from `hashed_from` to `end`.
    pub blake3: String,
}

impl StreamStats {
    /// Bytes this connection carried, uncompressed.
    pub fn raw_bytes(&self) -> u64 {
        self.end - self.start
    }

    /// Bytes `blake3` covers: the whole stream so far, for a connection that
    /// started it or resumed it from a prefix.
    pub fn hashed_bytes(&self) -> u64 {
        self.end - self.hashed_from
    }
}

#[derive(Debug)]
pub(super) struct Counters {
    start: u64,
    hashed_from: u64,
    /// The stream so far: its offset and running hash.
    prefix: Prefix,
    pub(super) wire_bytes: u64,
    chunks: u64,
    zstd_chunks: u64,
}

impl Counters {
    /// Counters for a connection whose first byte is at `start`, hashing from there.
    pub(super) fn new(start: u64) -> Self {
        Counters {
            start,
            hashed_from: start,
            prefix: Prefix {
                offset: start,
                hasher: blake3::Hasher::new(),
            },
            wire_bytes: 0,
            chunks: 0,
            zstd_chunks: 0,
        }
    }

    /// Counters for a connection continuing `prefix`: the hash covers it too.
    pub(super) fn resume(prefix: Prefix) -> Self {
        Counters {
            start: prefix.offset,
            hashed_from: 0,
            prefix,
            wire_bytes: 0,
            chunks: 0,
            zstd_chunks: 0,
        }
    }

    /// Offset after the last byte recorded.
    pub(super) fn offset(&self) -> u64 {
        self.prefix.offset
    }

    /// The stream up to here, for a later connection to resume from.
    pub(super) fn prefix(&self) -> Prefix {
        self.prefix.clone()
    }

    pub(super) fn record(&mut self, raw: &[u8], codec: Codec, wire: usize) -> Result<(), Error> {
        self.prefix.update(raw)?;
        self.wire_bytes = self.wire_bytes.saturating_add(wire as u64);
        self.chunks += 1;
        self.zstd_chunks += u64::from(codec != Codec::Raw);
        Ok(())
    }

    pub(super) fn stats(&self) -> StreamStats {
        StreamStats {
            start: self.start,
            end: self.prefix.offset,
            wire_bytes: self.wire_bytes,
            chunks: self.chunks,
            zstd_chunks: self.zstd_chunks,
            hashed_from: self.hashed_from,
            blake3: self.prefix.digest(),
        }
    }
}

/// Grows `buf` to at least `len` and returns exactly `len` bytes of it. Only
/// grows, so after the first large chunk the hot path allocates nothing.
pub(super) fn scratch(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

/// Maps a zstd error code to the error type the rest of the module uses.
pub(super) fn zstd_error(code: zstd::zstd_safe::ErrorCode) -> std::io::Error {
    std::io::Error::other(zstd::zstd_safe::get_error_name(code))
}
