//! What can go wrong with an identity: missing or existing files, unsafe key
//! permissions, unreadable PEM, and failures to generate keys or TLS configurations.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("an identity already exists: {} is present; refusing to overwrite it", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{} is missing; `ferry init --repair` makes a new key and certificate with this appliance's uuid (peers then need its new fingerprint)", path.display())]
    Missing { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid {what}: {reason}; `ferry init --repair` makes a new key and certificate with this appliance's uuid (peers then need its new fingerprint)", path.display())]
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
