//! What both daemons' metrics are made of: the registry per scrape, its two
//! exposition formats, the errors, and the helpers that build label families.

use std::net::SocketAddr;

use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

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
    pub(super) fn content_type(self) -> &'static str {
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

/// Label sets are (name, value) pairs in the order given.
pub(super) type Labels = Vec<(String, String)>;

pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `ferry_build_info{version, commit, protocol} 1`, on both daemons.
pub(super) fn register_build_info(registry: &mut Registry) {
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
pub(super) fn counters(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

pub(super) fn gauges(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

/// A count as a gauge value, saturating.
pub(super) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
