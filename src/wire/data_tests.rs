use super::*;
use tokio::io::{duplex, AsyncWriteExt, DuplexStream};

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
    // The 10-byte piece does not shrink under zstd's frame overhead.
    assert_eq!(codecs, [Raw, Zstd, Raw, Raw, Zstd]);
    let digest = blake3::hash(&input).to_hex().to_string();
    assert_eq!(sent.blake3, digest);
    assert_eq!(received, sent);
    assert_eq!(received.raw_bytes(), input.len() as u64);
    assert_eq!(received.zstd_chunks, 2);
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

#[tokio::test]
async fn copy_from_fills_whole_chunks_and_resumes_at_an_offset() {
    let input = [repetitive(CHUNK_SIZE + 5), random("c", CHUNK_SIZE)].concat();
    let (a, b) = duplex(64 * 1024);
    let start = 1_000_000u64;
    let send = async {
        let mut w = ChunkWriter::new(a, start, 1).unwrap();
        // A source that yields small reads, like a pipe.
        let (mut pipe_w, mut pipe_r) = duplex(64 * 1024);
        let feed = async {
            pipe_w.write_all(&input).await.unwrap();
            drop(pipe_w);
        };
        let (copied, ()) = tokio::join!(w.copy_from(&mut pipe_r), feed);
        assert_eq!(copied.unwrap(), input.len() as u64);
        w.finish().await.unwrap()
    };
    let recv = async {
        let mut r = ChunkReader::new(b, start).unwrap();
        let mut out = Vec::new();
        let stats = r.copy_to(&mut out).await.unwrap();
        (out, stats)
    };
    let (sent, (out, stats)) = tokio::join!(send, recv);
    assert!(out == input);
    assert_eq!(sent.chunks, 3, "{sent:?}");
    assert_eq!(
        (stats.start, stats.end),
        (start, start + input.len() as u64)
    );
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

#[tokio::test]
async fn an_adaptive_writer_raises_its_level_on_a_slow_link() {
    // A link that takes 100 ms per 64 KiB is far slower than zstd: the level climbs.
    let (a, mut b) = duplex(64 * 1024);
    let slow_reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            match tokio::io::AsyncReadExt::read(&mut b, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let mut w = ChunkWriter::new(a, 0, 3)
        .expect("writer")
        .adaptive(3, 1, 12);
    assert_eq!(w.level(), 3);
    // Text-like data that compresses, but not to nothing, so writes take time.
    let mut text = Vec::new();
    for i in 0..60_000u32 {
        text.extend_from_slice(
            format!("{i} ferry {} replicates\n", i.wrapping_mul(2_654_435_761)).as_bytes(),
        );
    }
    for chunk in text.chunks(128 * 1024).cycle().take(32) {
        w.write_chunk(chunk).await.expect("write");
    }
    assert!(w.level() > 3, "level stayed at {}", w.level());
    // A slow link trades overlap for ratio: bigger chunks compress better.
    assert_eq!(w.preferred_chunk(), SLOW_LINK_CHUNK_SIZE);
    drop(w);
    slow_reader.await.expect("reader");
}
