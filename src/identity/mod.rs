//! An appliance's identity: its TLS key and self-signed certificate, and fingerprints that pin peers.
//! Peers authenticate each other by certificate fingerprint over mutual TLS 1.3; there is no CA.

mod cert_uuid;
mod disk;
mod fingerprint;
mod tls;
#[cfg(test)]
mod tls_tests;

use std::path::PathBuf;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use cert_uuid::{certificate_uuid, peer_uuid};
pub use disk::{create, exists, load, CERT_FILE, KEY_FILE};
pub use fingerprint::{Fingerprint, ParseFingerprintError};
pub use tls::{
    client_config, peer_fingerprint, server_config, server_name, StaticPeers, TrustedPeers,
};

/// This appliance's key and certificate, as loaded from the state directory.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for Identity {
    // Keeps the private key out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint.to_string())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("an identity already exists: {} is present; refusing to overwrite it", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{} is missing; run `ferry init` to create this appliance's identity", path.display())]
    Missing { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid {what}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error(
        "{} has mode {mode:04o}, so group or others can access the private key; \
         run `chmod 600 {}` (and consider the key compromised if others could read it)",
        path.display(), path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("cannot generate the key and certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}
