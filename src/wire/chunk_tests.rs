//! The chunk stream end to end: `ChunkWriter` (and its encoder thread) into
//! `ChunkReader`, and hand-made bytes a correct writer never sends.

use super::chunk::{TAG_CHUNK, TAG_END};
use super::*;
use std::future::Future;

use tokio::io::{duplex, AsyncWriteExt, DuplexStream};
use uuid::Uuid;
use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
use zstd::zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

/// Incompressible bytes, reproducibly (blake3's XOF is a fine PRNG here).
fn random(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn repetitive(len: usize) -> Vec<u8> {
    b"ferry replicates btrfs shares. "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn chunk_header(offset: u64, raw_len: u32, codec: u8, wire_len: u32) -> Vec<u8> {
    let mut h = vec![TAG_CHUNK];
    h.extend_from_slice(&offset.to_be_bytes());
    h.extend_from_slice(&raw_len.to_be_bytes());
    h.push(codec);
    h.extend_from_slice(&wire_len.to_be_bytes());
    h
}

fn end(total: u64) -> Vec<u8> {
    let mut e = vec![TAG_END];
    e.extend_from_slice(&total.to_be_bytes());
    e
}

/// A reader over hand-made bytes, to feed it what a correct writer never sends.
async fn reader_over(bytes: &[u8]) -> ChunkReader<DuplexStream> {
    let (mut a, b) = duplex(bytes.len() + 1);
    a.write_all(bytes).await.unwrap();
    drop(a);
    ChunkReader::new(b, 0).unwrap()
}

async fn drain(r: &mut ChunkReader<DuplexStream>) -> Result<Vec<u8>, Error> {
    let mut got = Vec::new();
    while let Some(c) = r.next_chunk().await? {
        got.extend_from_slice(c);
    }
    Ok(got)
}

#[tokio::test]
async fn mixed_stream_round_trips_with_per_chunk_codecs() {
    let pieces = [
        random("a", CHUNK_SIZE),
        repetitive(CHUNK_SIZE),
        random("b", 300_000),
        repetitive(10),
        repetitive(MAX_CHUNK),
    ];
    let input: Vec<u8> = pieces.concat();
    let (a, b) = duplex(256 * 1024);
    let session = Uuid::new_v4();

    let send = async {
        let mut w = ChunkWriter::open(a, session, 0, 3).await.unwrap();
        let mut codecs = Vec::new();
        for p in &pieces {
            codecs.push(w.write_chunk(p).await.unwrap());
        }
        (codecs, w.finish().await.unwrap())
    };
    let recv = async {
        let (hello, mut r) = ChunkReader::open(b).await.unwrap();
        assert_eq!(hello, DataHello::new(session, 0));
        let got = drain(&mut r).await.unwrap();
        assert!(r.is_done());
        assert_eq!(r.next_chunk().await.unwrap(), None, "stays ended");
        (got, r.stats())
    };
    let ((codecs, sent), (got, received)) = tokio::join!(send, recv);

    assert!(got == input, "bytes differ");
    use Codec::*;
    // Samples of random data do not shrink: those chunks go raw. Small
    // pieces are not sampled, and a stream piece is never sent raw.
    assert_eq!(codecs, [Raw, ZstdStream, Raw, ZstdStream, ZstdStream]);
    let digest = blake3::hash(&input).to_hex().to_string();
    assert_eq!(sent.blake3, digest);
    assert_eq!(received, sent);
    assert_eq!(received.raw_bytes(), input.len() as u64);
    assert_eq!(received.zstd_chunks, 3);
    assert_eq!(received.chunks, 5);
    let incompressible = (CHUNK_SIZE + 300_000 + 10) as u64;
    assert!(
        received.wire_bytes < incompressible + 100_000,
        "{received:?}"
    );
}

#[tokio::test]
async fn level_zero_sends_raw() {
    let (a, b) = duplex(8 << 20);
    let mut w = ChunkWriter::new(a, 0, 0).unwrap();
    assert_eq!(w.write_chunk(&repetitive(4096)).await.unwrap(), Codec::Raw);
    w.finish().await.unwrap();
    let mut r = ChunkReader::new(b, 0).unwrap();
    assert_eq!(drain(&mut r).await.unwrap(), repetitive(4096));
}

/// A blocking source that hands out at most 64 KiB per read, like a pipe.
struct Trickle(std::io::Cursor<Vec<u8>>);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(64 * 1024);
        self.0.read(&mut buf[..n])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_fills_whole_chunks_growing_from_64_kib_and_resumes_at_an_offset() {
    let input = [repetitive(CHUNK_SIZE + 5), random("c", CHUNK_SIZE)].concat();
    let (a, b) = duplex(64 * 1024);
    let start = 1_000_000u64;
    let source = Trickle(std::io::Cursor::new(input.clone()));
    let send = async {
        let mut w = ChunkWriter::new(a, start, 1).unwrap();
        let mut seen = Vec::new();
        let copied = w.copy_from(source, |p| seen.push(p)).await;
        assert_eq!(copied.unwrap(), input.len() as u64);
        // Progress after every chunk; the first ones small so the receiver
        // starts early, then whole chunks however little each read brings.
        let mut sizes = Vec::new();
        let mut at = start;
        for p in &seen {
            sizes.push(p.offset - at);
            at = p.offset;
        }
        let k = 1024;
        let tail = input.len() as u64 - (64 + 128 + 256 + 512 + 1024) * k;
        assert_eq!(sizes, [64 * k, 128 * k, 256 * k, 512 * k, 1024 * k, tail]);
        let stats = w.finish().await.unwrap();
        let last = seen.last().unwrap();
        assert!(
            last.wire_bytes < stats.wire_bytes,
            "the end marker counts too"
        );
        stats
    };
    let recv = async {
        let mut r = ChunkReader::new(b, start).unwrap();
        let mut out = Vec::new();
        let stats = r.copy_to(&mut out).await.unwrap();
        (out, stats)
    };
    let (sent, (out, stats)) = tokio::join!(send, recv);
    assert!(out == input);
    assert_eq!(sent.chunks, 6, "{sent:?}");
    assert_eq!(sent, stats);
    assert_eq!(
        (stats.start, stats.end),
        (start, start + input.len() as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_is_a_source_error_and_keeps_the_writer() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let (a, _b) = duplex(1024);
    let mut w = ChunkWriter::new(a, 7, 3).unwrap();
    let err = w.copy_from(Broken, |_| {}).await.unwrap_err();
    assert!(matches!(err, Error::Source(_)), "{err}");
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert_eq!(
        w.stats().map(|s| s.end),
        Some(7),
        "the encoder came back from its thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_failure_ends_the_copy_with_the_network_error() {
    let (a, b) = duplex(64 * 1024);
    drop(b);
    let mut w = ChunkWriter::new(a, 0, 3).unwrap();
    let source = std::io::Cursor::new(random("n", 4 * CHUNK_SIZE));
    let err = w.copy_from(source, |_| {}).await.unwrap_err();
    assert!(
        err.is_temporary(),
        "the network's error, not Closed from the encoder: {err}"
    );
    assert!(matches!(err, Error::Io(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_copy_was_dropped_refuses_to_finish() {
    // Part of the stream may be out: an End now would claim a wrong total.
    let (a, _b) = duplex(64 * 1024);
    let mut w = ChunkWriter::new(a, 0, 3).unwrap();
    let source = std::io::Cursor::new(random("d", 4 * CHUNK_SIZE));
    let copy = w.copy_from(source, |_| {});
    // The peer never reads: the copy blocks on the network; give up on it.
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(200), copy).await;
    assert!(timed_out.is_err());
    assert_eq!(w.stats(), None);
    let err = w.finish().await.unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
}

#[tokio::test]
async fn codec_1_chunks_decode_on_their_own() {
    // ferry/1 receivers still take one zstd frame per chunk.
    let data = repetitive(50_000);
    let z = zstd::bulk::compress(&data, 3).unwrap();
    let mut bytes = chunk_header(0, 50_000, 1, z.len() as u32);
    bytes.extend_from_slice(&z);
    bytes.extend(end(50_000));
    assert!(drain(&mut reader_over(&bytes).await).await.unwrap() == data);
}

#[tokio::test]
async fn tampered_offset_is_offset_mismatch() {
    let data = random("d", 100);
    let mut bytes = chunk_header(0, 100, 0, 100);
    bytes.extend_from_slice(&data);
    bytes.extend(chunk_header(150, 100, 0, 100));
    bytes.extend_from_slice(&data);
    let mut r = reader_over(&bytes).await;
    assert!(r.next_chunk().await.unwrap().is_some());
    let err = r.next_chunk().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetMismatch {
                expected: 100,
                got: 150
            }
        ),
        "{err}"
    );
    assert!(!err.is_temporary());
}

#[tokio::test]
async fn oversized_chunk_is_refused_before_reading_it() {
    for (raw, wire) in [
        (MAX_CHUNK as u32 + 1, 10),
        (10, MAX_CHUNK as u32 + 1),
        (u32::MAX, u32::MAX),
    ] {
        let mut r = reader_over(&chunk_header(0, raw, 1, wire)).await;
        let err = r.next_chunk().await.unwrap_err();
        assert!(matches!(err, Error::ChunkTooLarge { .. }), "{err}");
    }
}

#[tokio::test]
async fn zstd_payload_of_the_wrong_size_is_refused() {
    let data = repetitive(10_000);
    let z = zstd::bulk::compress(&data, 3).unwrap();
    // Announces more than it holds, then less.
    for raw_len in [10_001u32, 9_999] {
        let mut bytes = chunk_header(0, raw_len, 1, z.len() as u32);
        bytes.extend_from_slice(&z);
        let mut r = reader_over(&bytes).await;
        let err = r.next_chunk().await.unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { .. } | Error::Decompress { .. }),
            "{err}"
        );
    }
    let mut bytes = chunk_header(0, 100, 1, 5);
    bytes.extend_from_slice(b"hello");
    let err = reader_over(&bytes).await.next_chunk().await.unwrap_err();
    assert!(matches!(err, Error::Decompress { .. }), "{err}");
}

#[tokio::test]
async fn end_total_must_match() {
    let mut bytes = chunk_header(0, 3, 0, 3);
    bytes.extend_from_slice(b"abc");
    bytes.extend(end(4));
    let err = drain(&mut reader_over(&bytes).await).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TotalMismatch {
                announced: 4,
                received: 3
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn eof_before_end_is_truncated() {
    let mut bytes = chunk_header(0, 3, 0, 3);
    bytes.extend_from_slice(b"abc");
    for cut in [bytes.len(), bytes.len() - 1, 5] {
        let err = drain(&mut reader_over(&bytes[..cut]).await)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "cut {cut}: {err}");
        assert!(err.is_temporary());
    }
}

#[tokio::test]
async fn unknown_tag_codec_and_raw_length_disagreement_are_malformed() {
    let cases = [
        vec![9u8],
        chunk_header(0, 3, 7, 3),
        chunk_header(0, 3, 0, 2),
    ];
    for bytes in cases {
        let err = reader_over(&bytes).await.next_chunk().await.unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
    }
}

#[tokio::test]
async fn data_hello_of_another_version_is_refused() {
    let (mut a, mut b) = duplex(1024);
    let hello = DataHello {
        protocol: "ferry/2".into(),
        ..DataHello::new(Uuid::new_v4(), 0)
    };
    write_frame(&mut a, &hello).await.unwrap();
    let err = ChunkReader::open(&mut b).await.err().unwrap();
    assert!(matches!(err, Error::VersionMismatch { .. }), "{err}");
}

/// Text-like data that compresses, but not to nothing.
fn text(len: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(len + 64);
    let mut i = 0u32;
    while text.len() < len {
        text.extend_from_slice(
            format!("{i} ferry {} replicates\n", i.wrapping_mul(2_654_435_761)).as_bytes(),
        );
        i += 1;
    }
    text.truncate(len);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adaptive_writer_raises_its_level_on_a_slow_link_and_the_stream_still_decodes() {
    // A link that takes 20 ms per read is far slower than zstd: the level
    // climbs, and each change ends a zstd frame mid-stream. The climb is read
    // off wall-clock waits, which a machine saturated by other work can blur
    // for a whole copy; three copies must not all miss it.
    let mut levels = Vec::new();
    for _ in 0..3 {
        let level = adaptive_copy_over_a_slow_link().await;
        if level > 3 {
            return;
        }
        levels.push(level);
    }
    panic!("the level never climbed: {levels:?}");
}

/// One adaptive copy of 16 MiB of text over a slow link, checked to decode
/// to the same bytes; returns the level it ended at.
async fn adaptive_copy_over_a_slow_link() -> i32 {
    let input = text(16 * CHUNK_SIZE);
    let (a, b) = duplex(64 * 1024);
    let slow = SlowReader {
        inner: b,
        delay: None,
    };
    // The floor is the start: on a machine loaded by other work, the first
    // window (queue still filling) can read as compression-bound, and a step
    // down would then block the climb for the cooldown.
    let mut w = ChunkWriter::new(a, 0, 3)
        .expect("writer")
        .adaptive(3, 3, 12)
        .expect("adaptive");
    assert_eq!(w.level(), 3);
    let source = std::io::Cursor::new(input.clone());
    let send = async {
        w.copy_from(source, |_| {}).await.expect("copy");
        let level = w.level();
        (level, w.finish().await.expect("finish"))
    };
    let recv = async {
        let mut r = ChunkReader::new(slow, 0).unwrap();
        let mut out = Vec::new();
        r.copy_to(&mut out).await.map(|s| (out, s))
    };
    let ((level, sent), received) = tokio::join!(send, recv);
    let (out, received) = received.expect("the stream decodes across level changes");
    assert!(out == input, "bytes differ");
    assert_eq!(received, sent);
    level
}

/// A reader that waits 20 ms before every read: a slow network.
struct SlowReader {
    inner: DuplexStream,
    delay: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl tokio::io::AsyncRead for SlowReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let delay = self.delay.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep(std::time::Duration::from_millis(20)))
        });
        std::task::ready!(delay.as_mut().poll(cx));
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() {
            self.delay = None;
        }
        polled
    }
}

/// `data` compressed as pieces of one stream, flushed after each of `cuts`.
fn stream_pieces(data: &[u8], cuts: &[usize], window_log: u32) -> Vec<Vec<u8>> {
    let mut c = CCtx::create();
    c.set_parameter(CParameter::WindowLog(window_log)).unwrap();
    c.set_parameter(CParameter::CompressionLevel(3)).unwrap();
    let mut pieces = Vec::new();
    let mut from = 0;
    for &to in cuts {
        let mut out: Vec<u8> = Vec::with_capacity(data.len() + 1024);
        let mut input = InBuffer::around(&data[from..to]);
        {
            let mut output = OutBuffer::around(&mut out);
            while c
                .compress_stream2(&mut output, &mut input, ZSTD_EndDirective::ZSTD_e_flush)
                .unwrap()
                > 0
            {}
        }
        pieces.push(out);
        from = to;
    }
    pieces
}

#[tokio::test]
async fn stream_pieces_must_decode_to_exactly_their_raw_len() {
    let data = repetitive(200_000);
    let pieces = stream_pieces(&data, &[100_000, 200_000], chunk::WINDOW_LOG);
    // The second piece refers back into the first: it only decodes in sequence.
    let mut bytes = chunk_header(0, 100_000, 2, pieces[0].len() as u32);
    bytes.extend_from_slice(&pieces[0]);
    bytes.extend(chunk_header(100_000, 100_000, 2, pieces[1].len() as u32));
    bytes.extend_from_slice(&pieces[1]);
    bytes.extend(end(200_000));
    assert!(drain(&mut reader_over(&bytes).await).await.unwrap() == data);

    // Announcing more or less than the piece holds is refused at that piece.
    for raw_len in [100_001u32, 99_999] {
        let mut bytes = chunk_header(0, raw_len, 2, pieces[0].len() as u32);
        bytes.extend_from_slice(&pieces[0]);
        let err = reader_over(&bytes).await.next_chunk().await.unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { .. }),
            "{raw_len}: {err}"
        );
    }
}

#[tokio::test]
async fn a_stream_asking_for_a_larger_window_is_refused() {
    // The window bounds the receiver's memory; a peer cannot raise it.
    let data = random("w", 1000);
    let pieces = stream_pieces(&data, &[1000], chunk::WINDOW_LOG + 4);
    let mut bytes = chunk_header(0, 1000, 2, pieces[0].len() as u32);
    bytes.extend_from_slice(&pieces[0]);
    let err = reader_over(&bytes).await.next_chunk().await.unwrap_err();
    assert!(matches!(err, Error::Decompress { .. }), "{err}");
}

#[test]
fn a_chunk_that_is_part_text_is_compressed_even_where_samples_hit_media() {
    // Regression: two samples (start and middle) sent chunks raw whenever both
    // landed in media, though the rest was text that halves under zstd: 8% more
    // wire on the bench's source tree. Here only one of eight samples is text.
    let mut chunk = random("media", CHUNK_SIZE);
    let text = text(CHUNK_SIZE / 8);
    let at = CHUNK_SIZE - text.len();
    chunk[at..].copy_from_slice(&text);
    let mut e = Encoder::new(0, 3).unwrap();
    let mut packed = Vec::new();
    let encoded = e.encode(&chunk, &mut packed).unwrap();
    assert_eq!(encoded.codec, Codec::ZstdStream);
    assert!(
        packed.len() < chunk.len(),
        "{} of {}",
        packed.len(),
        chunk.len()
    );

    // All media: not even tried.
    let encoded = e
        .encode(&random("more media", CHUNK_SIZE), &mut packed)
        .unwrap();
    assert_eq!(encoded.codec, Codec::Raw);
    assert_eq!(encoded.compressing, std::time::Duration::ZERO);
}
