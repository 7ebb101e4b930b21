//! The identity on disk: creating the key and self-signed certificate (never over an
//! existing one), and loading them back with their permissions and pairing checked.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::Datelike;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use uuid::Uuid;

use super::error::Error;
use super::fingerprint::Fingerprint;

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

pub const KEY_FILE: &str = "key.pem";
pub const CERT_FILE: &str = "cert.pem";

/// Validity of a new certificate. Peers are pinned by fingerprint and never
/// re-enrolled, so an expiry would silently cut replication on an appliance
/// nobody is watching; a century outlives the hardware.
const VALIDITY_YEARS: i32 = 100;

/// True if either identity file is present: an identity exists (possibly
/// damaged, which `load` reports) and `create` would refuse.
pub fn exists(state_dir: &Path) -> bool {
    [KEY_FILE, CERT_FILE]
        .iter()
        .any(|f| state_dir.join(f).symlink_metadata().is_ok())
}

/// Generates a new ECDSA P-256 key and self-signed certificate in `state_dir`.
///
/// P-256 rather than Ed25519: every TLS stack and tool (openssl, browsers,
/// HSM-backed keys) signs and verifies it, which matters when a person debugs
/// a handshake with `openssl s_client`. Refuses if either file exists: an
/// overwritten identity would orphan every peer that pinned the old one.
///
/// # Errors
///
/// [`Error::AlreadyExists`] when either file is present; [`Error::Generate`] when
/// the key or certificate cannot be made; [`Error::Io`] when a file or the directory
/// cannot be written or synced (a file written before the failure is removed).
pub fn create(state_dir: &Path, name: &str, uuid: Uuid) -> Result<Identity, Error> {
    let key_path = state_dir.join(KEY_FILE);
    let cert_path = state_dir.join(CERT_FILE);
    for path in [&key_path, &cert_path] {
        // symlink_metadata, so that even a dangling symlink counts as present.
        if path.symlink_metadata().is_ok() {
            return Err(Error::AlreadyExists { path: path.clone() });
        }
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(io_err("create directory", state_dir))?;

    let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    // The SAN only exists because rustls needs a ServerName; nobody verifies
    // names (peers are pinned), and `.invalid` can never resolve.
    let mut params = CertificateParams::new(vec![format!("{uuid}.ferry.invalid")])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("ferry {name}"));
    params.distinguished_name = dn;
    // Backdated to January 1st so a peer whose clock lags still sees a
    // currently valid certificate, should anything ever check.
    let year = chrono::Utc::now().year();
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + VALIDITY_YEARS, 1, 1);
    let cert = params.self_signed(&key_pair)?;

    write_new(&key_path, key_pair.serialize_pem().as_bytes(), 0o600)?;
    if let Err(e) = write_new(&cert_path, cert.pem().as_bytes(), 0o644) {
        // Half an identity would make every later `create` refuse and every
        // `load` fail; the key was ours a moment ago, so take it back.
        let _ = fs::remove_file(&key_path);
        return Err(e);
    }
    sync_dir(state_dir)?;

    let cert = cert.der().clone();
    Ok(Identity {
        fingerprint: Fingerprint::of_der(&cert),
        cert,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
    })
}

/// Reads the identity from `state_dir`.
///
/// A key file that group or others can access is an error, not a warning
/// (as OpenSSH does): a daemon that starts anyway trains people to ignore the
/// message, and the key is the appliance's only credential.
///
/// # Errors
///
/// [`Error::Missing`] when a file is absent; [`Error::KeyPermissions`] when the key
/// is readable by group or others; [`Error::Io`] when a file cannot be read;
/// [`Error::Corrupt`] when a file is not valid PEM or the key does not match the
/// certificate.
pub fn load(state_dir: &Path) -> Result<Identity, Error> {
    let key_path = state_dir.join(KEY_FILE);
    let cert_path = state_dir.join(CERT_FILE);

    let key_pem = read_key_file(&key_path)?;
    let cert_pem = read_file(&cert_path)?;

    let cert = CertificateDer::from_pem_slice(&cert_pem).map_err(|e| Error::Corrupt {
        path: cert_path.clone(),
        what: "PEM certificate",
        reason: e.to_string(),
    })?;
    ParsedCertificate::try_from(&cert).map_err(|e| Error::Corrupt {
        path: cert_path.clone(),
        what: "X.509 certificate",
        reason: e.to_string(),
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| Error::Corrupt {
        path: key_path.clone(),
        what: "PEM private key",
        reason: e.to_string(),
    })?;
    let signing_key = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| Error::Corrupt {
            path: key_path.clone(),
            what: "private key",
            reason: e.to_string(),
        })?;
    // A key that does not belong to the certificate would otherwise surface
    // only as handshake failures on the peer, far from the cause.
    CertifiedKey::new(vec![cert.clone()], signing_key)
        .keys_match()
        .map_err(|e| Error::Corrupt {
            path: key_path.clone(),
            what: "private key for the certificate in cert.pem",
            reason: e.to_string(),
        })?;

    Ok(Identity {
        fingerprint: Fingerprint::of_der(&cert),
        cert,
        key,
    })
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

fn open_existing(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => Error::Missing {
            path: path.to_path_buf(),
        },
        _ => Error::Io {
            action: "open",
            path: path.to_path_buf(),
            source,
        },
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    open_existing(path)?
        .read_to_end(&mut buf)
        .map_err(io_err("read", path))?;
    Ok(buf)
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, Error> {
    let mut file = open_existing(path)?;
    // fstat the open file, so the mode checked is the mode of what is read.
    let mode = file.metadata().map_err(io_err("stat", path))?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(io_err("read", path))?;
    Ok(buf)
}

/// Writes `data` to a new file at `path` with `mode`, never replacing an
/// existing file and never exposing a partly written one: the data goes to a
/// temporary file (created with its final mode, so the key is never briefly
/// readable), is synced, then hard-linked into place, which fails if `path`
/// appeared meanwhile (rename would silently overwrite).
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{file_name}.{}.tmp", Uuid::new_v4().simple()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    let result = file
        .write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(io_err("write", &tmp))
        .and_then(|()| {
            fs::hard_link(&tmp, path).map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                    path: path.to_path_buf(),
                },
                _ => Error::Io {
                    action: "create",
                    path: path.to_path_buf(),
                    source,
                },
            })
        });
    let _ = fs::remove_file(&tmp);
    result
}

/// Makes the new directory entries durable: an appliance losing power right
/// after `ferry init` must not come back with no identity or an empty one.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
