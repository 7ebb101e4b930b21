//! Values several commands take, parsed for clap so that a bad one is named
//! with its option (`--keep-source -1`: "must be a whole number of at least 1"),
//! and the one rule across them: a receiver's two ports differ.

use super::ctx::bad_input;

/// A peer's port: 1 to 65535.
///
/// # Errors
///
/// What is wrong with `text`, for clap to put after the option's name.
pub fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err("must be a port number from 1 to 65535".into()),
    }
}

/// A port to listen on: 1 to 65535, or 0 for any free one.
///
/// # Errors
///
/// What is wrong with `text`.
pub fn listen_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .map_err(|_| "must be a port number from 1 to 65535, or 0 for any free port".into())
}

/// An `ADDR:PORT` to listen on (`--metrics`); see [`crate::listen_addr::socket`].
///
/// # Errors
///
/// What is wrong with `text`, and the form expected.
pub fn listen_socket(text: &str) -> Result<std::net::SocketAddr, String> {
    crate::listen_addr::socket(text)
}

/// An IP address to listen on (`--listen`); see [`crate::listen_addr::ip`].
///
/// # Errors
///
/// What is wrong with `text`, and the form expected.
pub fn listen_ip(text: &str) -> Result<std::net::IpAddr, String> {
    crate::listen_addr::ip(text)
}

/// A count of at least 1 (snapshots to keep, rows to show).
///
/// # Errors
///
/// What is wrong with `text`.
pub fn count(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {}", u32::MAX)),
    }
}

/// Receives at once: 1 to 1024.
///
/// # Errors
///
/// What is wrong with `text`.
pub fn receive_slots(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n @ 1..=1024) => Ok(n),
        _ => Err("must be a whole number from 1 to 1024".into()),
    }
}

/// A `--frequency` as given; only a negative one is refused here, with a
/// reason about the sign (cron's field errors would say nothing useful about
/// `-5`). The schedule parser checks the rest.
///
/// # Errors
///
/// What is wrong with `text`.
pub fn frequency(text: &str) -> Result<String, String> {
    if text.trim_start().starts_with('-') {
        return Err(
            "must be positive: seconds (300), a duration (5m, 1h) or a cron expression, at \
             least every 60s"
                .into(),
        );
    }
    Ok(text.to_string())
}

/// A receiver listens on two ports, so the meta and data ports a peer is
/// reached on must differ; `which` says where the two values came from.
///
/// # Errors
///
/// `BadInput` naming both.
pub fn distinct_ports(meta: u16, data: u16, which: &str) -> anyhow::Result<()> {
    if meta == data {
        bad_input!(
            "{which} are both {meta}; they must differ: a receiver listens on a meta port and \
             a data port"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_say_what_they_must_be() {
        assert_eq!(port("10003"), Ok(10003));
        assert!(port("0").is_err() && port("-1").is_err() && port("65536").is_err());
        assert_eq!(listen_port("0"), Ok(0));
        assert_eq!(count("3"), Ok(3));
        assert!(count("0")
            .unwrap_err()
            .starts_with("must be a whole number from 1"));
        assert!(count("-1").is_err());
        assert!(frequency("-5").unwrap_err().starts_with("must be positive"));
        assert_eq!(frequency("5m").as_deref(), Ok("5m"));
        assert!(receive_slots("1025").is_err());
        assert!(distinct_ports(1, 2, "x").is_ok());
        let same = distinct_ports(7, 7, "--meta-port and --data-port").unwrap_err();
        assert_eq!(
            same.to_string(),
            "--meta-port and --data-port are both 7; they must differ: a receiver listens on \
             a meta port and a data port"
        );
    }
}
