//! Connections to a target's receiver: TCP, then TLS 1.3 pinned to the target's
//! fingerprint, then the `ferry/1` hello on the meta port.

use std::sync::Arc;
use std::time::Duration;

use rustls::AlertDescription;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::Error;
use crate::capabilities;
use crate::identity::{self, Fingerprint};
use crate::store::{Store, Task};
use crate::wire::{self, Client, Hello, Keepalive, MetaConn};

/// How long a TCP connect and a TLS handshake may take before the target counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a run sends to, resolved from the task and its appliance.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub address: String,
    pub meta_port: u16,
    pub data_port: u16,
    pub fingerprint: Fingerprint,
}

pub type Conn = TlsStream<TcpStream>;

/// A meta session with `task`'s target, as this appliance, with the TLS
/// configuration the data connection reuses.
pub struct Session {
    pub client: Client<Conn>,
    pub target: Target,
    pub tls: Arc<rustls::ClientConfig>,
    /// The hello this side sent, for reconnects.
    pub hello: Hello,
    pub my_fingerprint: Fingerprint,
    pub keepalive: Keepalive,
}

/// Resolves `task`'s target and opens a meta session with it.
///
/// # Errors
///
/// [`Error::NoIdentity`], [`Error::ApplianceGone`], [`Error::BadFingerprint`],
/// identity and store errors, and what [`meta`] returns.
pub async fn session(
    state_dir: &std::path::Path,
    store: &Store,
    task: &Task,
    keepalive: Keepalive,
) -> Result<Session, Error> {
    let identity = identity::load(state_dir)?;
    let me = store.identity()?.ok_or(Error::NoIdentity)?;
    let target = target(store, task)?;
    let tls = identity::client_config(&identity, target.fingerprint)?;
    // The first call probes btrfs-progs (a process): not on an async worker.
    let offered = tokio::task::spawn_blocking(capabilities::offered)
        .await
        .map_err(|e| Error::Crashed(format!("probing btrfs: {e}")))?;
    let hello = Hello::new(me.uuid, me.name, &offered);
    let client = meta(
        &target,
        tls.clone(),
        hello.clone(),
        identity.fingerprint,
        keepalive,
    )
    .await?;
    Ok(Session {
        client,
        target,
        tls,
        hello,
        my_fingerprint: identity.fingerprint,
        keepalive,
    })
}

/// Where `task` sends: its appliance, with the task's port overrides.
///
/// # Errors
///
/// [`Error::ApplianceGone`], [`Error::BadFingerprint`], or a store error.
pub fn target(store: &Store, task: &Task) -> Result<Target, Error> {
    let appliance = store
        .appliance(&task.target)?
        .ok_or_else(|| Error::ApplianceGone(task.target.clone()))?;
    let fingerprint: Fingerprint =
        appliance
            .fingerprint
            .parse()
            .map_err(|source| Error::BadFingerprint {
                appliance: appliance.name.clone(),
                source,
            })?;
    Ok(Target {
        meta_port: task.meta_port.unwrap_or(appliance.meta_port),
        data_port: task.data_port.unwrap_or(appliance.data_port),
        name: appliance.name,
        address: appliance.address,
        fingerprint,
    })
}

/// Opens a TLS connection to one of the target's ports.
///
/// # Errors
///
/// [`Error::Connect`] when TCP fails or either step takes over 10 s, [`Error::Tls`] when
/// the handshake fails (temporary unless rustls names a certificate problem).
pub async fn tls(
    target: &Target,
    port: u16,
    config: Arc<rustls::ClientConfig>,
) -> Result<Conn, Error> {
    let addr = format!("{}:{port}", target.address);
    let connect_err = |source| Error::Connect {
        appliance: target.name.clone(),
        addr: addr.clone(),
        source,
    };
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((target.address.as_str(), port)),
    )
    .await
    .map_err(|_| connect_err(timed_out()))?
    .map_err(connect_err)?;
    // Control messages are small and latency-bound; bulk frames are large anyway.
    tcp.set_nodelay(true).map_err(connect_err)?;
    let handshake = TlsConnector::from(config).connect(identity::server_name(), tcp);
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Err(_) => Err(connect_err(timed_out())),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(Error::Tls {
            appliance: target.name.clone(),
            addr,
            temporary: rustls_error(&e).is_none(),
            reason: rustls_error(&e).map_or_else(|| e.to_string(), describe_rustls),
        }),
    }
}

/// Opens the meta connection and exchanges hellos. In TLS 1.3 the client's
/// handshake ends before the server has judged the client's certificate, so a
/// receiver that does not know us is only heard of here, on the first read.
///
/// # Errors
///
/// Those of [`tls`], [`Error::NotTrusted`] when the target refuses this appliance's
/// certificate, [`Error::Wire`] when the hellos fail (another major version, say).
pub async fn meta(
    target: &Target,
    config: Arc<rustls::ClientConfig>,
    me: Hello,
    my_fingerprint: Fingerprint,
    keepalive: Keepalive,
) -> Result<Client<Conn>, Error> {
    let conn = tls(target, target.meta_port, config).await?;
    let meta = MetaConn::with_keepalive(conn, keepalive);
    let my_name = me.name.clone();
    match Client::handshake(meta, me).await {
        Ok(client) => Ok(client),
        Err(wire::Error::Io(e)) if refused_our_certificate(&e) => Err(Error::NotTrusted {
            appliance: target.name.clone(),
            me: my_name,
            fingerprint: my_fingerprint.to_string(),
        }),
        Err(source) => Err(Error::Wire {
            appliance: target.name.clone(),
            source,
        }),
    }
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// rustls prints some errors with Debug; keep the sentence inside when there is one.
fn describe_rustls(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            other.to_string()
        }
        other => other.to_string(),
    }
}

fn refused_our_certificate(e: &std::io::Error) -> bool {
    matches!(
        rustls_error(e),
        Some(rustls::Error::AlertReceived(
            AlertDescription::AccessDenied
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
        ))
    )
}
