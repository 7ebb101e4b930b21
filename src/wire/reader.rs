//! The receiver's side of a data connection: check offsets and lengths before
//! allocating, decompress, hash. After an error the position is unknown: drop it.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zstd::bulk::Decompressor;
use zstd::zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer};

use super::chunk::{
    scratch, zstd_error, Codec, Counters, Prefix, StreamStats, CHUNK_HEADER, END_LEN, MAX_CHUNK,
    TAG_CHUNK, TAG_END, WINDOW_LOG,
};
use super::handshake::read_data_hello;
use super::message::DataHello;
use super::Error;

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

/// Receiving half of a data connection. After an error the position in the
/// stream is unknown: drop the connection.
pub struct ChunkReader<R> {
    r: R,
    decompressor: Decompressor<'static>,
    /// The connection's zstd stream ([`Codec::ZstdStream`] pieces), created
    /// with the first piece.
    stream: Option<DCtx<'static>>,
    counters: Counters,
    wire: Vec<u8>,
    out: Vec<u8>,
    done: bool,
    /// Told how many payload bytes the reader is about to wait for (0: none
    /// known), so the connection can wake it only once most have arrived.
    waiting_for: Option<WaitHint>,
}

/// See [`ChunkReader::waking`].
pub type WaitHint = Box<dyn FnMut(usize) + Send>;

impl<R: AsyncRead + Unpin> ChunkReader<R> {
    /// A reader expecting the first chunk at `offset`, hashing from there.
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] when zstd cannot set up a decompressor.
    pub fn new(r: R, offset: u64) -> Result<Self, Error> {
        Ok(ChunkReader {
            r,
            decompressor: Decompressor::new().map_err(Error::Zstd)?,
            stream: None,
            counters: Counters::new(offset),
            wire: Vec::new(),
            out: Vec::new(),
            done: false,
            waiting_for: None,
        })
    }

    /// A reader continuing the stream after `prefix`: the first chunk must be
    /// at its offset, and the hash covers the prefix too.
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] when zstd cannot set up a decompressor.
    pub fn resume(r: R, prefix: Prefix) -> Result<Self, Error> {
        Ok(ChunkReader {
            r,
            decompressor: Decompressor::new().map_err(Error::Zstd)?,
            stream: None,
            counters: Counters::resume(prefix),
            wire: Vec::new(),
            out: Vec::new(),
            done: false,
            waiting_for: None,
        })
    }

    /// Calls `hint` with a chunk payload's length before reading it and with
    /// 0 after: a receiver on a slow link sets its socket's wake-up threshold
    /// from it (see `receiver::read_threshold`), instead of waking for every
    /// packet. Nothing else changes.
    pub fn waking(mut self, hint: WaitHint) -> Self {
        self.waiting_for = Some(hint);
        self
    }

    fn hint(&mut self, bytes: usize) {
        if let Some(h) = self.waiting_for.as_mut() {
            h(bytes);
        }
    }

    /// The stream up to the last chunk returned: what a later connection may
    /// resume from.
    pub fn prefix(&self) -> Prefix {
        self.counters.prefix()
    }

    /// Reads the [`DataHello`], then returns it with a reader starting at its offset.
    ///
    /// # Errors
    ///
    /// Those of [`read_data_hello`](super::read_data_hello) and [`new`](Self::new).
    pub async fn open(mut r: R) -> Result<(DataHello, Self), Error> {
        let hello = read_data_hello(&mut r).await?;
        let reader = Self::new(r, hello.offset)?;
        Ok((hello, reader))
    }

    /// The next chunk's uncompressed bytes, or `None` after a verified End.
    /// The slice is only valid until the next call.
    ///
    /// # Errors
    ///
    /// A malformed or tampered stream: [`Error::Malformed`], [`Error::ChunkTooLarge`],
    /// [`Error::OffsetMismatch`], [`Error::SizeMismatch`], [`Error::Decompress`],
    /// [`Error::TotalMismatch`]; a cut one: [`Error::Truncated`], [`Error::Io`]. After any
    /// error the position is unknown: drop the reader.
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
                if announced != self.counters.offset() {
                    return Err(Error::TotalMismatch {
                        announced,
                        received: self.counters.offset(),
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
        if offset != self.counters.offset() {
            return Err(Error::OffsetMismatch {
                expected: self.counters.offset(),
                got: offset,
            });
        }
        let known = match Codec::from_wire(codec) {
            Some(Codec::Raw) if wire_len != raw_len => None,
            c => c,
        };
        let codec = match known {
            Some(c) => c,
            None => {
                return Err(Error::Malformed {
                    what: format!(
                        "chunk at offset {offset} has codec {codec}, raw_len {raw_len}, wire_len {wire_len}"
                    ),
                })
            }
        };
        self.hint(wire_len);
        let filled = self.fill_payload(codec, offset, raw_len, wire_len).await;
        self.hint(0);
        filled?;
        let raw = &self.out[..raw_len];
        self.counters.record(raw, codec, CHUNK_HEADER + wire_len)?;
        Ok(raw)
    }

    async fn fill_payload(
        &mut self,
        codec: Codec,
        offset: u64,
        raw_len: usize,
        wire_len: usize,
    ) -> Result<(), Error> {
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
            Codec::ZstdStream => {
                fill(&mut self.r, scratch(&mut self.wire, wire_len), "chunk").await?;
                let stream = match self.stream.as_mut() {
                    Some(s) => s,
                    None => self.stream.insert(stream_decoder()?),
                };
                let out = scratch(&mut self.out, raw_len);
                unpack_piece(stream, &self.wire[..wire_len], out, offset)?;
            }
        }
        Ok(())
    }

    /// Writes every chunk to `w` (e.g. `btrfs receive`'s stdin) until a
    /// verified End, then flushes `w`.
    ///
    /// # Errors
    ///
    /// Those of [`next_chunk`](Self::next_chunk), and [`Error::Io`] writing to `w`.
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

    /// Takes the buffer holding the last chunk [`next_chunk`](Self::next_chunk)
    /// returned (its bytes are the buffer's first ones, as many as that chunk
    /// had), and reads the next chunk into `spare` instead: the caller may
    /// hand the chunk on without copying it (`btrfs::Receive::lend`).
    pub fn take_chunk(&mut self, spare: Vec<u8>) -> Vec<u8> {
        std::mem::replace(&mut self.out, spare)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn stats(&self) -> StreamStats {
        self.counters.stats()
    }
}

fn stream_decoder() -> Result<DCtx<'static>, Error> {
    let mut d = DCtx::try_create()
        .ok_or_else(|| Error::Zstd(std::io::Error::other("cannot allocate a zstd context")))?;
    // A peer asking for a larger window is refused rather than given the memory.
    d.set_parameter(DParameter::WindowLogMax(WINDOW_LOG))
        .map_err(|c| Error::Zstd(zstd_error(c)))?;
    Ok(d)
}

/// Decodes one piece of the stream into `out`, which it must fill exactly:
/// the sender flushed at the chunk's end, so nothing may stay behind in zstd.
fn unpack_piece(d: &mut DCtx<'_>, piece: &[u8], out: &mut [u8], offset: u64) -> Result<(), Error> {
    let expected = out.len();
    let bad = |reason: String| Error::Decompress { offset, reason };
    let mut input = InBuffer::around(piece);
    let mut output = OutBuffer::around(out);
    while input.pos() < piece.len() || output.pos() < expected {
        let before = (input.pos(), output.pos());
        d.decompress_stream(&mut output, &mut input)
            .map_err(|c| bad(zstd::zstd_safe::get_error_name(c).to_owned()))?;
        if (input.pos(), output.pos()) == before {
            // No progress: input ran out short of raw_len, or output is full
            // with input left over.
            return Err(Error::SizeMismatch {
                offset,
                expected,
                got: if output.pos() < expected {
                    output.pos()
                } else {
                    expected + 1
                },
            });
        }
    }
    let got = output.pos();
    // Output is full; any byte zstd still holds means the piece was longer.
    let mut extra = [0u8; 1];
    let mut spill = OutBuffer::around(&mut extra[..]);
    let mut empty = InBuffer::around(&[]);
    d.decompress_stream(&mut spill, &mut empty)
        .map_err(|c| bad(zstd::zstd_safe::get_error_name(c).to_owned()))?;
    if spill.pos() > 0 {
        return Err(Error::SizeMismatch {
            offset,
            expected,
            got: got + 1,
        });
    }
    Ok(())
}
