//! The `ferry/1` protocol: framing, messages, handshake and a typed client for the meta
//! (control) port, and the chunked stream of the data (bulk) port. Generic over
//! `AsyncRead + AsyncWrite`: callers bring the TLS stream, tests bring in-memory pipes.
//!
//! Layers, each using only those before it: `error`; `frame` (codec) and
//! `message` (what the frames carry); `conn` (a framed connection with keepalive);
//! `handshake` (hellos, versions, features); `client` (typed requests). The data
//! port: `chunk`, `adapt`, `encode`, `writer`, `reader`.
//!
//! # Protocol `ferry/1`
//!
//! Two TCP ports per receiver, both inside mutually authenticated TLS that the
//! caller sets up (nothing here reads from a peer before that).
//!
//! - **Meta port** (default 10003): request/reply control, one [`Meta`]
//!   message per frame.
//! - **Data port** (default 10002): one connection per transfer, sender to
//!   receiver only, carrying the `btrfs send` stream in chunks.
//!
//! ## Meta framing
//!
//! `len: u32 BE` then `len` bytes of one JSON object, `len <= MAX_FRAME`
//! (1 MiB). The object's `"type"` is the snake_case message name. A larger
//! length is refused before anything is allocated, so plaintext or a foreign
//! protocol on the port fails cleanly (`"GET "` reads as a 1.2 GB length).
//!
//! ## A meta session (S = sender, R = receiver)
//!
//! ```text
//! S->R hello{protocol,appliance,name,features,version}
//!                                      R->S hello{...}   each sends first, then reads;
//!                                                         different protocol: error{reason} naming both, close
//! S->R inventory{share,pool}           R->S inventory_reply{replicas}
//! S->R begin{share,snapshot,snapshot_uuid,parent,pool,keep}
//!                                      R->S ready{session} | refused{reason,busy}
//!      ... the stream goes over a data connection naming `session` ...
//! S->R commit{stream_bytes,blake3}     R->S received{received_uuid} | failed{reason,permanent}
//! S->R prune{share,pool,keep,preserve,zone}
//!                                      R->S pruned{deleted} | refused{reason,busy}   (retention-grid only)
//! ```
//!
//! ## Versions and features
//!
//! `protocol` is the major version: peers of different majors refuse each other
//! with one error naming both. Within `ferry/1`, optional capabilities are
//! [`Feature`]s: each hello lists the ones its side supports (`features`, absent
//! in the predecessor release's hello: none), and a session uses only those both
//! list. Unknown names (a newer peer's) are ignored. New fields of existing
//! messages are optional and left out when they carry nothing, so a frame that
//! says nothing new is byte-identical to the predecessor's; `failed.permanent`
//! is one (absent: temporary). The predecessor's frames are pinned as recorded
//! fixtures in `tests/fixtures/ferry1/`.
//!
//! Exchanges run one at a time and may repeat on one connection. Either side
//! may send `abort{reason}` after the hellos, and `ping` (answered by `pong`)
//! whenever it is waiting. Errors cross the wire as messages with a reason a
//! person can read.
//!
//! ## Data connection
//!
//! ```text
//! S->R frame(JSON {protocol, session, offset})            see DataHello
//! S->R 1u8 | offset u64 | raw_len u32 | codec u8 | wire_len u32 | wire_len bytes   (chunk, repeated)
//! S->R 2u8 | total u64                                      (end)
//! ```
//!
//! Integers are big-endian. Offsets count bytes of the uncompressed send
//! stream and must be contiguous from the hello's offset; `total` must equal
//! the offset after the last chunk. Codec 0 is raw (`wire_len == raw_len`);
//! codec 1 is one zstd frame that decompresses to exactly `raw_len` bytes on
//! its own; codec 2 is the next piece of the connection's one zstd stream
//! (window at most 2^23), flushed so that it decompresses to exactly `raw_len`
//! bytes given the pieces before it. Senders use 0 and 2: matches across
//! chunks keep the stream as small as a single `zstd` pipe's, and a resumed
//! stream, being a new connection, starts a new zstd stream at a chunk
//! boundary. Codec 2 came before any release, so `ferry/1` has all three.
//! There are no acknowledgements: TCP back pressure paces the
//! sender, and the verdict comes back on the meta port (`commit` carries the
//! count and blake3 of the uncompressed bytes).
//!
//! ## Limits
//!
//! [`MAX_FRAME`] 1 MiB per meta frame; [`MAX_CHUNK`] 4 MiB for `raw_len` and
//! `wire_len`; senders use [`CHUNK_SIZE`] 1 MiB, after first chunks that grow
//! from 64 KiB. A waiting side pings after [`Keepalive::interval`] (10 s) of
//! silence and gives the peer up after [`Keepalive::dead_after`] (30 s); the
//! handshake waits at most `dead_after` for the peer's hello.
//! [`Error::is_temporary`] classifies every failure for retries.

mod adapt;
mod chunk;
mod client;
mod conn;
mod encode;
mod error;
mod frame;
mod handshake;
mod inventory;
mod message;
mod reader;
mod throttle;
mod writer;

pub use chunk::{Codec, Prefix, StreamStats, CHUNK_SIZE, MAX_CHUNK};
pub use client::Client;
pub use conn::{Keepalive, MetaConn};
pub use encode::{Encoded, Encoder};
pub use error::Error;
pub use frame::{read_frame, write_frame, MAX_FRAME};
pub use handshake::{handshake, read_data_hello, Agreed};
pub use message::{
    Base, Begin, Commit, DataHello, Failed, Feature, Features, Hello, Inventory, InventoryReply,
    Meta, Parent, Parked, Prune, Pruned, Ready, Reason, Received, Refused, Replica, ResumeAt,
    Withheld, PROTOCOL,
};
pub use reader::{ChunkReader, WaitHint};
pub use throttle::Throttle;
pub use writer::{ChunkWriter, Position};

#[cfg(test)]
mod chunk_tests;
#[cfg(test)]
mod resume_tests;
