//! Real TLS handshakes over loopback TCP between configs built by this module.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::*;

fn identity(name: &str) -> Identity {
    let dir = tempfile::tempdir().expect("tempdir");
    create(dir.path(), name, uuid::Uuid::new_v4()).expect("create identity")
}

fn trusting(ids: &[&Identity]) -> Arc<dyn TrustedPeers> {
    Arc::new(ids.iter().map(|i| i.fingerprint).collect::<StaticPeers>())
}

type ServerResult = std::io::Result<server::TlsStream<TcpStream>>;
type ClientResult = std::io::Result<client::TlsStream<TcpStream>>;

/// Runs one handshake on 127.0.0.1 and returns both ends' outcomes.
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> (ServerResult, ClientResult) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        TlsAcceptor::from(server).accept(tcp).await
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let client = TlsConnector::from(client).connect(server_name(), tcp).await;
    let server = tokio::time::timeout(Duration::from_secs(10), accept)
        .await
        .expect("server handshake finishes")
        .expect("server task");
    (server, client)
}

#[tokio::test]
async fn mutual_handshake_succeeds_and_names_peers() {
    let (a, b) = (identity("a"), identity("b"));
    let server_cfg = server_config(&b, trusting(&[&a])).expect("server config");
    let client_cfg = client_config(&a, b.fingerprint).expect("client config");
    let (server, client) = handshake(server_cfg, client_cfg).await;
    let (mut server, mut client) = (server.expect("server side"), client.expect("client side"));

    assert_eq!(peer_fingerprint(server.get_ref().1), Some(a.fingerprint));
    assert_eq!(peer_fingerprint(client.get_ref().1), Some(b.fingerprint));
    assert_eq!(
        server.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    client.write_all(b"ping").await.expect("client write");
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.expect("server read");
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").await.expect("server write");
    client.read_exact(&mut buf).await.expect("client read");
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn mutual_handshake_works_in_both_directions() {
    let (a, b) = (identity("a"), identity("b"));
    for (srv, cli) in [(&a, &b), (&b, &a)] {
        let server_cfg = server_config(srv, trusting(&[cli])).expect("server config");
        let client_cfg = client_config(cli, srv.fingerprint).expect("client config");
        let (server, client) = handshake(server_cfg, client_cfg).await;
        let server = server.expect("server side");
        let client = client.expect("client side");
        assert_eq!(peer_fingerprint(server.get_ref().1), Some(cli.fingerprint));
        assert_eq!(peer_fingerprint(client.get_ref().1), Some(srv.fingerprint));
    }
}

#[tokio::test]
async fn untrusted_client_is_refused_on_both_ends() {
    let (a, b, stranger) = (identity("a"), identity("b"), identity("stranger"));
    let server_cfg = server_config(&b, trusting(&[&a])).expect("server config");
    let client_cfg = client_config(&stranger, b.fingerprint).expect("client config");
    let (server, client) = handshake(server_cfg, client_cfg).await;
    let err = server.expect_err("server must refuse a stranger");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    // TLS 1.3: the client's handshake may complete before the server judges
    // its certificate; the refusal then arrives as an alert on first read.
    let err = match client {
        Err(e) => e,
        Ok(mut stream) => {
            let mut buf = [0u8; 1];
            stream
                .read(&mut buf)
                .await
                .expect_err("client must not get data")
        }
    };
    assert!(err.to_string().contains("AccessDenied"), "{err}");
}

/// Trust that changes after the config is built, like the appliances table.
#[derive(Debug, Default)]
struct Table(Mutex<HashSet<Fingerprint>>);

impl TrustedPeers for Table {
    fn is_trusted(&self, fp: &Fingerprint) -> bool {
        self.0.lock().map(|t| t.contains(fp)).unwrap_or(false)
    }
}

#[tokio::test]
async fn trust_is_looked_up_at_each_handshake() {
    let (a, b) = (identity("a"), identity("b"));
    let table = Arc::new(Table::default());
    let server_cfg = server_config(&b, table.clone()).expect("server config");
    let client_cfg = client_config(&a, b.fingerprint).expect("client config");

    let (server, _) = handshake(server_cfg.clone(), client_cfg.clone()).await;
    assert!(server.is_err(), "unknown before `appliance add`");
    table.0.lock().expect("lock").insert(a.fingerprint);
    let (server, client) = handshake(server_cfg.clone(), client_cfg.clone()).await;
    assert!(
        server.is_ok() && client.is_ok(),
        "known after `appliance add`"
    );
    table.0.lock().expect("lock").clear();
    let (server, _) = handshake(server_cfg, client_cfg).await;
    assert!(
        server.is_err(),
        "refused again after `appliance remove`, no resumption"
    );
}

#[tokio::test]
async fn wrong_server_pin_fails_naming_both_fingerprints() {
    let (a, b, other) = (identity("a"), identity("b"), identity("other"));
    let server_cfg = server_config(&b, trusting(&[&a])).expect("server config");
    let client_cfg = client_config(&a, other.fingerprint).expect("client config");
    let (server, client) = handshake(server_cfg, client_cfg).await;
    let err = client
        .expect_err("client must refuse the wrong server")
        .to_string();
    assert!(err.contains(&b.fingerprint.to_string()), "names got: {err}");
    assert!(
        err.contains(&other.fingerprint.to_string()),
        "names expected: {err}"
    );
    assert!(server.is_err(), "server sees the client's alert");
}

#[tokio::test]
async fn plaintext_client_fails_server_handshake() {
    let b = identity("b");
    let server_cfg = server_config(&b, trusting(&[])).expect("server config");
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"",
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0],
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cfg = server_cfg.clone();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            TlsAcceptor::from(cfg).accept(tcp).await.map(|_| ())
        });
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(garbage).await.expect("write garbage");
        tcp.shutdown().await.expect("shutdown");
        let result = tokio::time::timeout(Duration::from_secs(10), accept)
            .await
            .expect("server gives up")
            .expect("server task does not panic");
        assert!(result.is_err(), "garbage {garbage:?} accepted");
    }
}

/// Accepts any server, so the test exercises only the server's own checks.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
async fn tls12_only_client_is_refused() {
    let (a, b) = (identity("a"), identity("b"));
    let server_cfg = server_config(&b, trusting(&[&a])).expect("server config");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_client_auth_cert(vec![a.cert.clone()], a.key.clone_key())
        .expect("client cert");
    let (server, client) = handshake(server_cfg, Arc::new(client_cfg)).await;
    assert!(server.is_err(), "server must refuse TLS 1.2");
    assert!(client.is_err(), "client sees the refusal");
}

/// Presents `cert` but signs with an unrelated key: an impostor who copied a
/// public certificate. Pinning alone would wave it through.
#[derive(Debug)]
struct Impostor(Arc<CertifiedKey>);

impl Impostor {
    fn new(cert: &Identity, key: &Identity) -> Arc<Self> {
        let signer = rustls::crypto::aws_lc_rs::default_provider()
            .key_provider
            .load_private_key(key.key.clone_key())
            .expect("load key");
        Arc::new(Impostor(Arc::new(CertifiedKey::new(
            vec![cert.cert.clone()],
            signer,
        ))))
    }
}

impl rustls::server::ResolvesServerCert for Impostor {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for Impostor {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn server_with_copied_certificate_but_wrong_key_is_refused() {
    let (a, b, mallory) = (identity("a"), identity("b"), identity("mallory"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_cert_resolver(Impostor::new(&b, &mallory));
    let client_cfg = client_config(&a, b.fingerprint).expect("client config");
    let (_, client) = handshake(Arc::new(server_cfg), client_cfg).await;
    let err = client.expect_err("signature check must catch the impostor");
    assert!(err.to_string().contains("BadSignature"), "{err}");
}

#[tokio::test]
async fn client_with_copied_certificate_but_wrong_key_is_refused() {
    let (a, b, mallory) = (identity("a"), identity("b"), identity("mallory"));
    let server_cfg = server_config(&b, trusting(&[&a])).expect("server config");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_client_cert_resolver(Impostor::new(&a, &mallory));
    let (server, _) = handshake(server_cfg, Arc::new(client_cfg)).await;
    let err = server.expect_err("signature check must catch the impostor");
    assert!(err.to_string().contains("BadSignature"), "{err}");
}

#[test]
fn aes_128_gcm_is_preferred() {
    let suites = &super::tls::provider().cipher_suites;
    assert_eq!(
        suites.first().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
    );
    assert!(suites.len() >= 3, "the other suites stay available");
}
