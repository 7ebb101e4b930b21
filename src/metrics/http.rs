//! The `/metrics` endpoint: hyper's HTTP/1 server on a listener the daemon bound,
//! answering `GET /metrics` with a fresh scrape and anything else with 404/405.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::scrape::{Error, Format, Scrape};

/// Scrapes served at once; more connections wait for a turn.
const CONNECTIONS: usize = 8;

/// A client must send its request headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `scrape` on `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, scrape: Arc<dyn Scrape>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let scrape = scrape.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, scrape.clone()));
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(peer = %peer, error = %e, "metrics: connection ended");
            }
            drop(permit);
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

async fn answer(
    req: Request<Incoming>,
    scrape: Arc<dyn Scrape>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.uri().path() != "/metrics" {
        return Ok(reply(StatusCode::NOT_FOUND, TEXT, "try /metrics\n".into()));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "GET only\n".into(),
        ));
    }
    // Prometheus asks for OpenMetrics first; anything else gets the classic text format.
    let format = match req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
        _ => Format::Text,
    };
    // The database is read on a blocking thread: SQLite may wait for a writer.
    let rendered = tokio::task::spawn_blocking(move || scrape.render(format)).await;
    Ok(match rendered {
        Ok(Ok(body)) => reply(StatusCode::OK, format.content_type(), body),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: scrape failed");
            reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n"))
        }
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
    })
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
        tokio::spawn(serve(self.listener, scrape))
    }
}
