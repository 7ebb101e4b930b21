//! Prometheus metrics of both daemons (`--metrics ADDR:PORT`): the sender's tasks
//! and sends, the receiver's receives, replicas, refusals and peers, per scrape.
//!
//! Counters are rebuilt from the state database's history at the first scrape
//! and then follow it, so they survive restarts; what the database does not
//! record (refusals, when a peer was last seen) is kept in memory.

mod http;
mod receiver;
mod sender;
mod tally;

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

pub use receiver::ReceiverMetrics;
pub use sender::SenderMetrics;

/// Why the metrics could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Store(#[from] crate::store::Error),
    #[error("metrics: cannot encode: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// The two exposition formats, both written by `prometheus-client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: what any scraper reads.
    Text,
    /// `application/openmetrics-text`: what Prometheus asks for first.
    OpenMetrics,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What a daemon exposes: a fresh registry per scrape.
pub trait Scrape: Send + Sync + 'static {
    /// The registry as of now.
    ///
    /// # Errors
    ///
    /// The state database could not be read.
    fn registry(&self) -> Result<Registry, Error>;

    /// The scrape, encoded.
    ///
    /// # Errors
    ///
    /// The state database could not be read.
    fn render(&self, format: Format) -> Result<String, Error> {
        let registry = self.registry()?;
        let mut out = String::new();
        match format {
            Format::Text => prometheus_text::encode(&mut out, &registry)?,
            Format::OpenMetrics => openmetrics_text::encode(&mut out, &registry)?,
        }
        Ok(out)
    }
}

/// A bound metrics listener, served by [`Endpoint::serve`].
pub struct Endpoint {
    listener: TcpListener,
}

impl Endpoint {
    /// Binds `addr` (port 0 picks a free port: [`Endpoint::addr`] names it).
    ///
    /// # Errors
    ///
    /// The address cannot be bound (in use, not local, no permission).
    pub async fn bind(addr: SocketAddr) -> Result<Endpoint, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(Endpoint { listener })
    }

    pub fn addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `GET /metrics` from a task on the current runtime.
    pub fn serve(self, scrape: Arc<dyn Scrape>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(http::serve(self.listener, scrape))
    }
}

/// Label sets are (name, value) pairs in the order given.
type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `ferry_build_info{version, commit, protocol} 1`, on both daemons.
fn register_build_info(registry: &mut Registry) {
    registry.register(
        "ferry_build",
        "The running ferry: release, git commit, protocol",
        Info::new(labels(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", env!("FERRY_GIT_COMMIT")),
            ("protocol", crate::wire::PROTOCOL),
        ])),
    );
}

/// A counter family, registered; prometheus-client appends `_total` to `name`.
fn counters(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

fn gauges(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

/// A count as a gauge value, saturating.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
