//! The appliance uuid a certificate carries: `ferry init` puts it in the SAN as
//! `<uuid>.ferry.invalid`, so a pinned certificate also pins whose uuid it is.

use rustls::CommonState;
use uuid::Uuid;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The SAN suffix that follows the uuid (see [`super::create`]).
const SUFFIX: &str = ".ferry.invalid";

/// The uuid named by `der`'s `<uuid>.ferry.invalid` SAN; `None` when it does not
/// parse or names none, or names more than one (which `ferry init` never makes).
pub fn certificate_uuid(der: &[u8]) -> Option<Uuid> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut found = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::DNSName(name) => name
            .strip_suffix(SUFFIX)
            .and_then(|u| Uuid::parse_str(u).ok()),
        _ => None,
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// The appliance name `ferry init` put in `der`'s common name (`ferry NAME`).
pub fn certificate_name(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    cn.strip_prefix("ferry ").map(str::to_string)
}

/// The uuid in the peer's end-entity certificate, once the handshake has completed.
pub fn peer_uuid(conn: &CommonState) -> Option<Uuid> {
    conn.peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| certificate_uuid(cert))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uuid_ferry_init_puts_in_the_san_is_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let uuid = Uuid::new_v4();
        let id = super::super::create(dir.path(), "nas1", uuid).expect("create");
        assert_eq!(certificate_uuid(&id.cert), Some(uuid));
        assert_eq!(certificate_uuid(b"not a certificate"), None);
        // `ferry init --repair` reads the name back too.
        assert_eq!(certificate_name(&id.cert).as_deref(), Some("nas1"));
    }

    #[test]
    fn a_certificate_without_the_san_names_no_uuid() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["nas1.example".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        assert_eq!(certificate_uuid(cert.der()), None);
    }
}
