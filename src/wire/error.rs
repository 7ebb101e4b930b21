//! Everything that can go wrong on the wire, as one line a person can act on,
//! classified temporary or permanent to drive retries.

use std::time::Duration;

/// An I/O error's text without the documentation link rustls puts in some
/// (a closed TLS connection's): rows and logs are read by people, not crates.
pub fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(": https://") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Everything that can go wrong on either port. Each message is one line a
/// person can act on; [`Error::is_temporary`] tells retry logic what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection error: {}", io_text(.0))]
    Io(#[from] std::io::Error),
    #[error("peer closed the connection")]
    Closed,
    #[error("connection closed in the middle of a {what}")]
    Truncated { what: &'static str },
    #[error("no word from the peer for {after:?}")]
    Timeout { after: Duration },
    #[error(
        "peer announced a {len}-byte frame, over the {max}-byte limit (is it a ferry/1 peer?)"
    )]
    FrameTooLarge { len: u64, max: usize },
    #[error("could not decode a message from the peer: {0}")]
    Decode(serde_json::Error),
    #[error("could not encode a message: {0}")]
    Encode(serde_json::Error),
    #[error(
        "peer speaks {theirs}, this appliance speaks {ours}; upgrade ferry on the older appliance"
    )]
    VersionMismatch { ours: String, theirs: String },
    #[error("protocol violation: expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
    #[error("peer reported: {reason}")]
    Peer { reason: String },
    #[error("peer refused: {reason}")]
    Refused {
        reason: String,
        busy: bool,
        /// The receiver's hint: ask again no sooner than this.
        retry_after: Option<std::time::Duration>,
    },
    /// The receiver's verdict on a transfer: it failed, and left nothing.
    #[error("the receive failed: {reason}")]
    Failed { reason: String, permanent: bool },
    #[error("peer aborted: {reason}")]
    Aborted { reason: String },
    #[error("malformed data stream: {what}")]
    Malformed { what: String },
    #[error(
        "chunk at offset {offset} announces a {field} of {len} bytes, over the {max}-byte limit"
    )]
    ChunkTooLarge {
        offset: u64,
        field: &'static str,
        len: u64,
        max: usize,
    },
    #[error(
        "chunk starts at offset {got}, expected {expected}: the stream skipped or repeated data"
    )]
    OffsetMismatch { expected: u64, got: u64 },
    #[error("chunk at offset {offset} decompressed to {got} bytes, but announced {expected}")]
    SizeMismatch {
        offset: u64,
        expected: usize,
        got: usize,
    },
    #[error("chunk at offset {offset} does not decompress: {reason}")]
    Decompress { offset: u64, reason: String },
    #[error("data stream ends claiming {announced} bytes, but {received} arrived")]
    TotalMismatch { announced: u64, received: u64 },
    #[error("zstd failed locally: {0}")]
    Zstd(std::io::Error),
    /// Reading what is to be sent failed (for a sender: `btrfs send`'s pipe).
    #[error("reading the stream to send: {0}")]
    Source(std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether trying again later (new connection, same request) may succeed.
    ///
    /// Lost connections, silence and busy peers are temporary. Anything that
    /// says the peer or its data is wrong is permanent: retrying would send the
    /// same bytes to the same code and fail the same way.
    pub fn is_temporary(&self) -> bool {
        match self {
            // I/O errors below the framing are the network's, not the peer's.
            Error::Io(_) | Error::Closed | Error::Truncated { .. } | Error::Timeout { .. } => true,
            Error::Refused { busy, .. } => *busy,
            // The receiver knows why it failed and says whether it is final;
            // one rule whether the verdict came during the stream or after Commit.
            Error::Failed { permanent, .. } => !*permanent,
            // An abort is the peer giving up on this attempt (shutdown, its own
            // failure), not a verdict on our request.
            Error::Aborted { .. } => true,
            Error::FrameTooLarge { .. }
            | Error::Decode(_)
            | Error::Encode(_)
            | Error::VersionMismatch { .. }
            | Error::Unexpected { .. }
            | Error::Peer { .. }
            | Error::Malformed { .. }
            | Error::ChunkTooLarge { .. }
            | Error::OffsetMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::Decompress { .. }
            | Error::TotalMismatch { .. }
            | Error::Zstd(_)
            | Error::Source(_)
            | Error::Internal(_) => false,
        }
    }

    /// The peer's hint for when to ask again, if it gave one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Maps an early EOF from `read_exact` to [`Error::Truncated`].
    pub(crate) fn eof_is_truncated(what: &'static str) -> impl Fn(std::io::Error) -> Error {
        move |e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::Truncated { what },
            _ => Error::Io(e),
        }
    }
}

#[cfg(test)]
mod io_text_tests {
    use super::*;

    /// Pins: Ctrl-C during a run left a rustls documentation URL in the
    /// receiver's history row.
    #[test]
    fn io_errors_carry_no_documentation_links() {
        let rustls = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: \
             https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        assert_eq!(
            Error::Io(rustls).to_string(),
            "connection error: peer closed connection without sending TLS close_notify"
        );
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(io_text(&plain), plain.to_string());
    }
}
