//! The frame codec of both ports' JSON messages: a u32 big-endian length and one
//! JSON body, the length capped before anything is allocated.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Error;

/// Largest meta frame body. Control messages are small; the cap bounds what an
/// unauthenticated or confused peer can make us allocate.
pub const MAX_FRAME: usize = 1 << 20;

/// Bytes of the length prefix.
pub(super) const LEN_BYTES: usize = 4;

/// Validates an announced body length before anything is allocated for it.
pub(super) fn body_len(header: [u8; LEN_BYTES]) -> Result<usize, Error> {
    let len = u32::from_be_bytes(header);
    if len as usize > MAX_FRAME {
        return Err(Error::FrameTooLarge {
            len: len.into(),
            max: MAX_FRAME,
        });
    }
    Ok(len as usize)
}

/// Appends one frame to `out`; leaves `out` unchanged on error.
pub(super) fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if let Err(e) = serde_json::to_writer(&mut *out, msg) {
        out.truncate(start);
        return Err(Error::Encode(e));
    }
    let len = out.len() - start - LEN_BYTES;
    // Refuse to send what the peer would refuse to read.
    let Some(len32) = u32::try_from(len).ok().filter(|_| len <= MAX_FRAME) else {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            len: len as u64,
            max: MAX_FRAME,
        });
    };
    out[start..start + LEN_BYTES].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// Writes one frame and flushes it.
///
/// # Errors
///
/// [`Error::Encode`] or [`Error::FrameTooLarge`] (nothing written), [`Error::Io`].
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), Error>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let mut buf = Vec::new();
    encode_into(msg, &mut buf)?;
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame. Not cancel-safe: use [`super::MetaConn`] where a read may
/// race a timer.
///
/// # Errors
///
/// [`Error::Closed`], [`Error::Truncated`], [`Error::FrameTooLarge`] (before the body is
/// read), [`Error::Decode`], [`Error::Io`].
pub async fn read_frame<R, T>(r: &mut R) -> Result<T, Error>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut header = [0; LEN_BYTES];
    let mut got = 0;
    while got < LEN_BYTES {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return Err(if got == 0 {
                Error::Closed
            } else {
                Error::Truncated { what: "frame" }
            });
        }
        got += n;
    }
    let mut body = vec![0; body_len(header)?];
    r.read_exact(&mut body)
        .await
        .map_err(Error::eof_is_truncated("frame"))?;
    serde_json::from_slice(&body).map_err(Error::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tokio::io::duplex;

    #[tokio::test]
    async fn round_trip() {
        let (mut a, mut b) = duplex(1024);
        write_frame(&mut a, &json!({"type": "ping"})).await.unwrap();
        let got: Value = read_frame(&mut b).await.unwrap();
        assert_eq!(got, json!({"type": "ping"}));
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_reading_the_body() {
        let (mut a, mut b) = duplex(1024);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let err = read_frame::<_, Value>(&mut b).await.unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { .. }), "{err}");
        assert!(!err.is_temporary());
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_truncated_and_a_clean_close_is_closed() {
        for bytes in [&[0u8, 0][..], &[0, 0, 0, 10, b'{', b'"']] {
            let (mut a, mut b) = duplex(1024);
            a.write_all(bytes).await.unwrap();
            drop(a);
            let err = read_frame::<_, Value>(&mut b).await.unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "{err}");
            assert!(err.is_temporary());
        }
        let (a, mut b) = duplex(1024);
        drop(a);
        assert!(matches!(
            read_frame::<_, Value>(&mut b).await,
            Err(Error::Closed)
        ));
    }

    #[test]
    fn a_frame_over_the_limit_is_not_encoded() {
        let mut out = vec![1, 2];
        let big = "x".repeat(MAX_FRAME + 1);
        let err = encode_into(&big, &mut out).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { .. }), "{err}");
        assert_eq!(out, vec![1, 2], "nothing of the refused frame stays");
    }
}
