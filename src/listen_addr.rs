//! Addresses the daemons listen on, as an admin writes them in flags and config
//! keys: parsed with a reason that names what is wrong and the form expected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What an `ADDR:PORT` value must look like, for every error about one.
const SOCKET_FORM: &str = "give ADDR:PORT, an IP address and a port from 1 to 65535 (0 for \
                           any free port), e.g. 127.0.0.1:9100 or [::1]:9100";

/// What an `ADDR` value must look like, for every error about one.
const IP_FORM: &str = "give an IP address, e.g. 0.0.0.0 (every IPv4 address), :: or 192.0.2.10";

/// An `ADDR:PORT` to listen on (`--metrics`, `metrics_listen`): an IP address
/// (IPv6 in brackets) and a port 0 to 65535, 0 being any free port. Host names
/// are refused: a daemon binds before any resolver is known to be up.
///
/// # Errors
///
/// One line: what is wrong with `text` (no port, a port out of range, not an
/// IP address, IPv6 without brackets), then the form expected.
pub fn socket(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    Err(format!("{}; {SOCKET_FORM}", socket_problem(text)))
}

/// What is wrong with `text`, which is not an `ADDR:PORT`.
fn socket_problem(text: &str) -> String {
    if text.parse::<IpAddr>().is_ok() {
        return format!("{text:?} has no port");
    }
    let (ip_ok, addr, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) => (v6.parse::<Ipv6Addr>().is_ok(), v6, after.strip_prefix(':')),
            None => return format!("{text:?} opens a bracket it does not close"),
        },
        None => match text.rsplit_once(':') {
            Some((addr, port)) => (addr.parse::<Ipv4Addr>().is_ok(), addr, Some(port)),
            None => return format!("{text:?} is not an IP address and has no port"),
        },
    };
    match port {
        _ if !ip_ok && !text.starts_with('[') && addr.parse::<Ipv6Addr>().is_ok() => {
            let port = port.unwrap_or_default();
            format!("the IPv6 address {addr} needs brackets: [{addr}]:{port}")
        }
        _ if !ip_ok => format!("{addr:?} is not an IP address (host names are not looked up)"),
        None | Some("") => format!("{text:?} has no port"),
        Some(port) if port.parse::<i128>().is_ok() => format!("port {port} is out of range"),
        Some(port) => format!("port {port:?} is not a number"),
    }
}

/// An IP address to listen on (`--listen`, `receiver.listen`), without a port:
/// the ports have their own flags and keys.
///
/// # Errors
///
/// One line: what is wrong with `text`, then the form expected.
pub fn ip(text: &str) -> Result<IpAddr, String> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(addr);
    }
    let unbracketed = text.strip_prefix('[').and_then(|a| a.strip_suffix(']'));
    let problem = if text.parse::<SocketAddr>().is_ok() {
        format!("{text:?} has a port; the meta and data ports are set on their own")
    } else if unbracketed.is_some_and(|a| a.parse::<Ipv6Addr>().is_ok()) {
        format!("{text:?} has brackets, which only go around an IPv6 address with a port")
    } else {
        format!("{text:?} is not an IP address (host names are not looked up)")
    };
    Err(format!("{problem}; {IP_FORM}"))
}

/// serde for an IP address written as text, read with [`ip`].
pub mod ip_text {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
        super::ip(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(addr: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
        addr.serialize(s)
    }
}

/// serde for an optional `ADDR:PORT` written as text, read with [`socket`].
pub mod socket_text {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        super::socket(&String::deserialize(d)?)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        addr.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_address_is_named_with_the_form_expected() {
        assert_eq!(socket("127.0.0.1:0"), Ok("127.0.0.1:0".parse().unwrap()));
        assert_eq!(socket("[::1]:9100"), Ok("[::1]:9100".parse().unwrap()));
        let cases = [
            (
                "127.0.0.1:99999",
                "port 99999 is out of range; give ADDR:PORT",
            ),
            ("127.0.0.1:-1", "port -1 is out of range;"),
            ("127.0.0.1:http", "port \"http\" is not a number;"),
            ("127.0.0.1", "\"127.0.0.1\" has no port;"),
            ("127.0.0.1:", "\"127.0.0.1:\" has no port;"),
            ("::1", "\"::1\" has no port;"),
            ("localhost:9100", "\"localhost\" is not an IP address"),
            ("fe80::1:9100", "\"fe80::1:9100\" has no port;"),
            ("[::1", "\"[::1\" opens a bracket it does not close;"),
            ("[::1]", "\"[::1]\" has no port;"),
            ("[::1]:", "\"[::1]:\" has no port;"),
            ("[nas]:1", "\"nas\" is not an IP address"),
            (
                "::1:99999",
                "the IPv6 address ::1 needs brackets: [::1]:99999;",
            ),
            ("nas", "\"nas\" is not an IP address and has no port;"),
            ("", "\"\" is not an IP address and has no port;"),
        ];
        for (text, start) in cases {
            let e = socket(text).unwrap_err();
            assert!(e.starts_with(start), "{text}: {e}");
            assert!(e.ends_with("e.g. 127.0.0.1:9100 or [::1]:9100"), "{e}");
        }
        assert_eq!(ip("::"), Ok("::".parse().unwrap()));
        for (text, start) in [
            ("1.2.3", "\"1.2.3\" is not an IP address"),
            ("10.0.0.1:10003", "\"10.0.0.1:10003\" has a port;"),
            ("[::1]", "\"[::1]\" has brackets"),
            ("nas1.local", "\"nas1.local\" is not an IP address"),
        ] {
            let e = ip(text).unwrap_err();
            assert!(e.starts_with(start), "{text}: {e}");
            assert!(e.contains("; give an IP address"), "{e}");
        }
    }
}
