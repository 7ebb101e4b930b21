//! Tests of the configuration file: the shipped sample, defaults, and one-line errors
//! that name the key and the file for every kind of bad input.

use super::*;

const SAMPLE: &str = include_str!("../ferry.toml.sample");

fn refused(text: &str) -> String {
    let file = Path::new("/etc/ferry/ferry.toml");
    let message = parse(text, file)
        .expect_err("config should be refused")
        .to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    assert!(message.starts_with("/etc/ferry/ferry.toml"), "{message}");
    message
}

#[test]
fn sample_parses_to_the_defaults() {
    let config = parse(SAMPLE, Path::new("ferry.toml.sample")).expect("sample parses");
    assert_eq!(config, Config::default());
}

#[test]
fn sample_sets_every_key() {
    // Serializing the defaults lists every key the struct has, so a key added
    // to Config but not documented in the sample fails here.
    fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            match v.as_table() {
                Some(t) => keys(t, &format!("{prefix}{k}."), out),
                None => out.push(format!("{prefix}{k}")),
            }
        }
        out.sort();
    }
    let all: toml::Table =
        toml::from_str(&toml::to_string(&Config::default()).unwrap()).expect("defaults round-trip");
    let sample: toml::Table = toml::from_str(SAMPLE).expect("sample is TOML");
    let (mut want, mut got) = (Vec::new(), Vec::new());
    keys(&all, "", &mut want);
    keys(&sample, "", &mut got);
    assert_eq!(got, want);
}

#[test]
fn empty_file_gives_the_defaults() {
    let config = parse("", Path::new("x.toml")).expect("empty parses");
    assert_eq!(config, Config::default());
    assert_eq!(config.state_dir, Path::new("/var/lib/ferry"));
    assert_eq!(config.receiver.meta_port, 10003);
    assert_eq!(config.sender.retry_max, Duration::from_secs(3600));
}

#[test]
fn values_are_read() {
    let text = "state_dir = \"/srv/ferry\"\nlog_level = \"debug\"\n[receiver]\n\
                listen = \"::1\"\nmeta_port = 2\nhandshake_timeout = \"1m 5s\"\n\
                keepalive = \"2s\"\n[sender]\nmax_sends = 8\nretry_first = \"2h\"\n\
                retry_max = \"2h\"\nkeepalive = \"1s\"\n";
    let config = parse(text, Path::new("x.toml")).expect("parses");
    assert_eq!(config.state_dir, Path::new("/srv/ferry"));
    assert_eq!(config.log_level, LogLevel::Debug);
    assert_eq!(config.receiver.listen, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(config.receiver.meta_port, 2);
    assert_eq!(config.receiver.data_port, DEFAULT_DATA_PORT);
    assert_eq!(config.receiver.handshake_timeout, Duration::from_secs(65));
    assert_eq!(config.sender.max_sends, 8);
    assert_eq!(config.sender.retry_first, config.sender.retry_max);
    assert_eq!(config.receiver.keepalive, Duration::from_secs(2));
    assert_eq!(config.sender.keepalive, Duration::from_secs(1));
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let m = refused("log_level = \"info\"\nverbose = true\n");
    assert!(m.contains(":2: verbose: unknown key"), "{m}");
    let m = refused("[receiver]\nlisten_port = 1\n");
    assert!(m.contains("receiver.listen_port: unknown key"), "{m}");
    let m = refused("[sendr]\nmax_sends = 1\n");
    assert!(m.contains("sendr: unknown key"), "{m}");
}

#[test]
fn bad_values_are_refused_by_key() {
    for (text, key) in [
        (
            "[receiver]\nmeta_port = 0",
            "receiver.meta_port: port must be between 1",
        ),
        (
            "[receiver]\ndata_port = 0",
            "receiver.data_port: port must be between 1",
        ),
        ("[receiver]\ndata_port = 65536", "receiver.data_port:"),
        (
            "[receiver]\ndata_port = 10003",
            "receiver.data_port: 10003 is also",
        ),
        (
            "[receiver]\nmax_receives = 0",
            "receiver.max_receives: must be at least 1",
        ),
        (
            "[sender]\nmax_sends = 0",
            "sender.max_sends: must be at least 1",
        ),
        ("[sender]\nmax_sends = -2", "sender.max_sends:"),
        (
            "[sender]\nretry_first = \"soon\"",
            "sender.retry_first: \"soon\" is not",
        ),
        ("[sender]\nretry_first = 30", "sender.retry_first:"),
        (
            "[sender]\nretry_first = \"30s\"",
            "sender.retry_first: must be at least 60s",
        ),
        (
            "[sender]\nretry_first = \"2h\"",
            "sender.retry_first: 2h is longer",
        ),
        (
            "[receiver]\ndata_timeout = \"0s\"",
            "receiver.data_timeout: must be longer",
        ),
        (
            "[receiver]\nkeepalive = \"0s\"",
            "receiver.keepalive: must be longer",
        ),
        (
            "[sender]\nkeepalive = \"0s\"",
            "sender.keepalive: must be longer",
        ),
        (
            "[sender]\nresume_for = \"300000000000y\"",
            "sender.resume_for: must be at most 366d",
        ),
        (
            "[receiver]\nresume_window = \"367d\"",
            "receiver.resume_window: must be at most 366d",
        ),
        ("[receiver]\nslot_wait = \"1000y\"", "receiver.slot_wait:"),
        ("[sender]\nretry_max = \"2y\"", "sender.retry_max:"),
        (
            "[sender]\nkeepalive = \"400d\"",
            "sender.keepalive: must be at most",
        ),
        ("[sender.hooks]\ntimeout = \"2y\"", "sender.hooks.timeout:"),
        ("log_level = \"loud\"", "log_level: unknown variant `loud`"),
        (
            "[receiver]\nlisten = \"10.0.0\"",
            "receiver.listen: \"10.0.0\" is not an IP address",
        ),
        (
            "[receiver]\nmetrics_listen = \"127.0.0.1:99999\"",
            "receiver.metrics_listen: port 99999 is out of range; give ADDR:PORT",
        ),
        (
            "[sender]\nmetrics_listen = \"localhost:9100\"",
            "sender.metrics_listen: \"localhost\" is not an IP address",
        ),
        ("[receiver]\nlisten = \"nas1.local\"", "receiver.listen:"),
        ("receiver = 3", "receiver:"),
        (
            "state_dir = \"ferry\"",
            "state_dir: must be an absolute path",
        ),
        ("state_dir = \"\"", "state_dir: must be an absolute path"),
    ] {
        let m = refused(text);
        assert!(m.contains(key), "{text:?} gave {m}");
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let m = refused("log_level = \"info\"\n[receiver\n");
    assert!(m.starts_with("/etc/ferry/ferry.toml:2: "), "{m}");
}

#[test]
fn explicit_path_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = load_or_default(Some(&path)).expect_err("missing file refused");
    assert!(matches!(err, ConfigError::Missing { .. }));
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[test]
fn default_path_is_optional_but_read_when_present() {
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("ferry.toml");
    assert_eq!(
        load_or_default_at(None, &default).unwrap(),
        Config::default()
    );
    std::fs::write(&default, "[sender]\nmax_sends = 5\n").unwrap();
    let config = load_or_default_at(None, &default).unwrap();
    assert_eq!(config.sender.max_sends, 5);
    std::fs::write(&default, "bogus = 1\n").unwrap();
    let err = load_or_default_at(None, &default).unwrap_err().to_string();
    assert!(
        err.contains(&*default.to_string_lossy()) && err.contains("bogus"),
        "{err}"
    );
}

#[test]
fn log_level_maps_to_tracing() {
    assert_eq!(tracing::Level::from(LogLevel::Warn), tracing::Level::WARN);
    assert_eq!(LogLevel::Trace.to_string(), "trace");
}
