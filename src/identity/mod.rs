//! An appliance's identity: its TLS key and self-signed certificate, and fingerprints that pin peers.
//! Peers authenticate each other by certificate fingerprint over mutual TLS 1.3; there is no CA.

mod cert_uuid;
mod disk;
mod error;
mod fingerprint;
mod tls;
#[cfg(test)]
mod tls_tests;

pub use cert_uuid::{certificate_name, certificate_uuid, peer_uuid};
pub use disk::{create, exists, load, Identity, CERT_FILE, KEY_FILE};
pub use error::Error;
pub use fingerprint::{Fingerprint, ParseFingerprintError};
pub use tls::{
    client_config, peer_fingerprint, server_config, server_name, StaticPeers, TrustedPeers,
};
