//! The data connection resumed from a prefix: the hash continues, the offset
//! must match.

use super::*;
use tokio::io::duplex;
use uuid::Uuid;

fn repetitive(len: usize) -> Vec<u8> {
    b"ferry resumes where the receiver's copy ends. "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Bytes that do not compress, different for each `seed`.
fn random(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = blake3::hash(seed.as_bytes());
    while out.len() < len {
        out.extend_from_slice(block.as_bytes());
        block = blake3::hash(block.as_bytes());
    }
    out.truncate(len);
    out
}

/// Pins: a stream cut after some chunks and continued on a new connection from
/// the receiver's prefix hashes, at its end, exactly as the uncut stream: the
/// Commit of a resumed transfer is checked as strictly as any other.
#[tokio::test]
async fn a_resumed_connection_continues_the_hash_of_the_whole_stream() {
    let first = [repetitive(CHUNK_SIZE), random("r", 70_000)];
    let rest = [random("s", 1000), repetitive(300_000)];
    let whole: Vec<u8> = first.concat().into_iter().chain(rest.concat()).collect();
    let session = Uuid::new_v4();

    // The first connection carries two chunks, then breaks (no End).
    let (a, b) = duplex(4 << 20);
    let mut w = ChunkWriter::open(a, session, 0, 3).await.unwrap();
    for p in &first {
        w.write_chunk(p).await.unwrap();
    }
    drop(w);
    let (_, mut r) = ChunkReader::open(b).await.unwrap();
    let mut got = Vec::new();
    let cut = loop {
        match r.next_chunk().await {
            Ok(Some(c)) => got.extend_from_slice(c),
            Ok(None) => panic!("the cut stream must not end"),
            Err(e) => break e,
        }
    };
    assert!(matches!(cut, Error::Truncated { .. }), "{cut}");
    let held = r.prefix();
    assert_eq!(held.offset(), got.len() as u64);

    // The sender proves it has the same prefix, then continues.
    let mut ours = Prefix::new();
    ours.update(&whole[..got.len()]).unwrap();
    assert_eq!(ours.digest(), held.digest());
    let (a, b) = duplex(4 << 20);
    let mut w = ChunkWriter::resume(a, session, ours, 3).await.unwrap();
    for p in &rest {
        w.write_chunk(p).await.unwrap();
    }
    let sent = w.finish().await.unwrap();
    let mut b = b;
    let hello = crate::wire::read_data_hello(&mut b).await.unwrap();
    assert_eq!(hello.offset, held.offset());
    let mut r = ChunkReader::resume(b, held).unwrap();
    while let Some(c) = r.next_chunk().await.unwrap() {
        got.extend_from_slice(c);
    }
    let received = r.stats();
    assert!(got == whole, "bytes differ");
    let digest = blake3::hash(&whole).to_hex().to_string();
    assert_eq!(
        (sent.blake3.as_str(), received.blake3.as_str()),
        (digest.as_str(), digest.as_str())
    );
    assert_eq!(received.hashed_bytes(), whole.len() as u64);
    assert_eq!(
        received.raw_bytes(),
        rest.concat().len() as u64,
        "this connection's own bytes"
    );
    assert_eq!(received.start, first.concat().len() as u64);
}

/// Pins: a resumed connection's first chunk must sit exactly at the prefix's
/// end; one that skips or repeats bytes is refused.
#[tokio::test]
async fn a_resumed_reader_refuses_a_stream_at_another_offset() {
    let mut prefix = Prefix::new();
    prefix.update(b"0123456789").unwrap();
    let (a, b) = duplex(1 << 20);
    let mut w = ChunkWriter::new(a, 7, 0).unwrap();
    w.write_chunk(b"abc").await.unwrap();
    drop(w);
    let mut r = ChunkReader::resume(b, prefix).unwrap();
    let err = r.next_chunk().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetMismatch {
                expected: 10,
                got: 7
            }
        ),
        "{err}"
    );
}
