//! The `ferry/1` protocol: framing and messages for the meta (control) and data (bulk) ports.
//! Generic over `AsyncRead + AsyncWrite`: callers bring the TLS stream, tests bring in-memory pipes.

mod error;
mod frame;
mod meta;

pub use error::Error;
pub use frame::{read_frame, write_frame, MetaConn, DEAD_AFTER, KEEPALIVE_INTERVAL, MAX_FRAME};
pub use meta::{handshake, read_data_hello, DataHello, Hello, Meta, Parent, Replica, PROTOCOL};
