//! Prometheus metrics of both daemons (`--metrics ADDR:PORT`): the sender's tasks
//! and sends, the receiver's receives, replicas, refusals and peers, per scrape.
//!
//! Counters are rebuilt from the state database's history at the first scrape
//! and then follow it, so they survive restarts; what the database does not
//! record (refusals, when a peer was last seen) is kept in memory.

mod http;
mod receiver;
mod scrape;
mod sender;
mod tally;

pub use http::Endpoint;
pub use receiver::ReceiverMetrics;
pub use scrape::{Error, Format, Scrape};
pub use sender::SenderMetrics;
