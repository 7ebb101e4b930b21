//! rustls configurations for both sides: TLS 1.3 only, mutual authentication, each
//! peer pinned by certificate fingerprint instead of a CA (no names, no resumption).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::NoServerSessionStorage;
use rustls::{
    CertificateError, ClientConfig, CommonState, DigitallySignedStruct, DistinguishedName,
    OtherError, ServerConfig, SignatureScheme,
};

use super::disk::Identity;
use super::error::Error;
use super::fingerprint::Fingerprint;

/// Decides which client certificates the receiver accepts.
///
/// Consulted at every handshake (not copied into the config), so that
/// `ferry appliance add` takes effect without restarting the receiver.
pub trait TrustedPeers: Send + Sync + fmt::Debug {
    fn is_trusted(&self, fp: &Fingerprint) -> bool;
}

/// A fixed set of trusted fingerprints, for tests and one-off tools.
#[derive(Debug, Clone, Default)]
pub struct StaticPeers(pub HashSet<Fingerprint>);

impl TrustedPeers for StaticPeers {
    fn is_trusted(&self, fp: &Fingerprint) -> bool {
        self.0.contains(fp)
    }
}

impl FromIterator<Fingerprint> for StaticPeers {
    fn from_iter<I: IntoIterator<Item = Fingerprint>>(iter: I) -> Self {
        StaticPeers(iter.into_iter().collect())
    }
}

/// The name every client connects with. Certificates are pinned by
/// fingerprint, so the name is never checked; rustls just needs one.
pub fn server_name() -> ServerName<'static> {
    ServerName::DnsName(
        rustls::pki_types::DnsName::try_from("ferry.invalid")
            .map(|n| n.to_owned())
            .unwrap_or_else(|_| unreachable!("ferry.invalid is a valid DNS name")),
    )
}

/// The fingerprint of the peer's end-entity certificate, once the handshake
/// has completed.
pub fn peer_fingerprint(conn: &CommonState) -> Option<Fingerprint> {
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| Fingerprint::of_der(cert))
}

pub(super) fn provider() -> Arc<CryptoProvider> {
    // Explicit, so behaviour never depends on which provider some other crate
    // in the process happened to install as the default.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // Both ends are ferry, so the order decides: AES-128-GCM first. It is as
    // safe a choice as AES-256 for this use and costs about a third less CPU
    // per byte, which on a fast link is CPU the stream needs.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// Receiver side: TLS 1.3 only, client certificate mandatory and accepted only
/// if `peers` trusts its fingerprint.
///
/// # Errors
///
/// [`Error::Tls`] when rustls refuses the key or the configuration.
pub fn server_config(
    identity: &Identity,
    peers: Arc<dyn TrustedPeers>,
) -> Result<Arc<ServerConfig>, Error> {
    let provider = provider();
    let verifier = Arc::new(PinnedClients {
        peers,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    // A resumed session skips the client certificate check, so an appliance
    // removed from the table could reconnect on an old ticket. Full handshakes
    // are cheap next to a btrfs stream.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Sender side: TLS 1.3 only, presents `identity` and accepts only a server
/// whose certificate has fingerprint `server`.
///
/// In TLS 1.3 the client finishes its handshake before the server has judged
/// the client certificate, so a receiver's refusal shows up as an error on
/// the first read, not from `connect`. Callers must read the peer's first
/// message before treating the connection as accepted.
///
/// # Errors
///
/// [`Error::Tls`] when rustls refuses the key or the configuration.
pub fn client_config(identity: &Identity, server: Fingerprint) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let verifier = Arc::new(PinnedServer {
        pinned: server,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    // Resumption would skip the pin check; see server_config.
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The server's certificate is not the one this sender was told to expect.
struct PinMismatch {
    expected: Fingerprint,
    got: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "receiver presented certificate {}, but this appliance is pinned to {}",
            self.got, self.expected
        )
    }
}

// rustls renders CertificateError::Other with Debug, and that text ends up in
// the sender's history row, so Debug must read as the message.
impl fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for PinMismatch {}

#[derive(Debug)]
struct PinnedServer {
    pinned: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of_der(end_entity);
        if got == self.pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected: self.pinned,
                    got,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct PinnedClients {
    peers: Arc<dyn TrustedPeers>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClients {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fp = Fingerprint::of_der(end_entity);
        if self.peers.is_trusted(&fp) {
            Ok(ClientCertVerified::assertion())
        } else {
            tracing::warn!(fingerprint = %fp, "refused TLS client: fingerprint is not a known appliance");
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

// Unreachable with our TLS 1.3-only configs; refusing keeps it that way if
// someone ever widens the protocol versions.
fn tls12_refused() -> rustls::Error {
    rustls::Error::General("ferry peers must use TLS 1.3".into())
}
