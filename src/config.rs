//! The daemons' configuration file (`/etc/ferry/ferry.toml`): every key optional with
//! a default, unknown keys and out-of-range values refused with the key and file named.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bandwidth::{Rate, Window};
pub use crate::config_text::LogLevel;
pub use crate::history_settings::{job_cron, HistorySettings};
pub use crate::hook_settings::HookSettings;
use thiserror::Error;

/// Where state lives (database, key, certificate) when neither the config file's
/// `state_dir` nor `--state-dir` / `FERRY_STATE_DIR` names a place.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferry";
/// Where the daemons look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/ferry/ferry.toml";
/// The receiver's control port.
pub const DEFAULT_META_PORT: u16 = 10003;
/// The receiver's bulk port.
pub const DEFAULT_DATA_PORT: u16 = 10002;

/// Why a configuration could not be used. Every message is one line naming the file,
/// and the key when one is at fault, so it reads well in the journal.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {} does not exist; create it from ferry.toml.sample, or name another with --config", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {reason}", at(path, *line))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    #[error("{}: {key}: {reason}", at(path, *line))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        reason: String,
    },
}

fn at(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

/// The whole file. `FERRY_STATE_DIR` and `--state-dir` override `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub state_dir: PathBuf,
    pub log_level: LogLevel,
    pub receiver: ReceiverSettings,
    pub sender: SenderSettings,
    pub history: HistorySettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_level: LogLevel::default(),
            receiver: ReceiverSettings::default(),
            sender: SenderSettings::default(),
            history: HistorySettings::default(),
        }
    }
}

/// `[receiver]`: what `ferry receiver` listens on and how long it waits for peers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverSettings {
    #[serde(with = "crate::listen_addr::ip_text")]
    pub listen: IpAddr,
    pub meta_port: u16,
    pub data_port: u16,
    /// Concurrent receives across all sources.
    pub max_receives: u32,
    /// How long a send waits for a free receive slot before it is refused as
    /// busy; 0 refuses at once.
    #[serde(with = "crate::config_text::duration")]
    pub slot_wait: Duration,
    /// When replicas on disk are audited against the table: cron, 5 or 6
    /// fields, UTC.
    pub audit: String,
    #[serde(with = "crate::config_text::duration")]
    pub handshake_timeout: Duration,
    #[serde(with = "crate::config_text::duration")]
    pub data_timeout: Duration,
    /// Silence on a meta connection after which the receiver pings; a sender
    /// silent for three of these is given up (its receive parked).
    #[serde(with = "crate::config_text::duration")]
    pub keepalive: Duration,
    /// Where `GET /metrics` is served (`--metrics`); `None`: not at all.
    #[serde(
        with = "crate::listen_addr::socket_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// How long a receive whose connection broke is kept for a resume; 0 keeps none.
    #[serde(with = "crate::config_text::duration")]
    pub resume_window: Duration,
    /// The most replicas kept of one line (pool, source, share), whatever a
    /// sender's retention asks for.
    pub max_replicas_per_line: u32,
}

impl Default for ReceiverSettings {
    fn default() -> Self {
        ReceiverSettings {
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            meta_port: DEFAULT_META_PORT,
            data_port: DEFAULT_DATA_PORT,
            max_receives: 4,
            slot_wait: Duration::from_secs(60),
            audit: "0 */6 * * *".to_string(),
            handshake_timeout: Duration::from_secs(10),
            data_timeout: Duration::from_secs(30),
            keepalive: crate::wire::Keepalive::DEFAULT.interval,
            metrics_listen: None,
            resume_window: Duration::from_secs(15 * 60),
            max_replicas_per_line: crate::retention::DEFAULT_MAX_REPLICAS_PER_LINE,
        }
    }
}

/// `[sender]`: how many sends run at once and how failed runs back off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderSettings {
    /// Concurrent sends across all tasks.
    pub max_sends: u32,
    /// Delay before the first retry after a failed run (at least 60 s, the
    /// schedule floor); doubles up to `retry_max` and the task's own period.
    #[serde(with = "crate::config_text::duration")]
    pub retry_first: Duration,
    #[serde(with = "crate::config_text::duration")]
    pub retry_max: Duration,
    /// Where `GET /metrics` is served (`--metrics`); `None`: not at all.
    #[serde(
        with = "crate::listen_addr::socket_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// How long a run whose connection broke keeps reconnecting to resume its
    /// transfer before it fails; 0 fails at once.
    #[serde(with = "crate::config_text::duration")]
    pub resume_for: Duration,
    /// Silence on a meta connection after which a run pings; a receiver silent
    /// for three of these is given up (and the transfer resumed).
    #[serde(with = "crate::config_text::duration")]
    pub keepalive: Duration,
    /// A cap on the wire, bytes per second, that all sends share; 0: none.
    #[serde(with = "crate::config_text::text")]
    pub bwlimit: Rate,
    /// The daily window (local time) the cap applies in; absent: always.
    #[serde(
        with = "crate::config_text::text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub bwlimit_window: Option<Window>,
    /// Hooks of tasks that name none of their own.
    pub hooks: HookSettings,
}

impl Default for SenderSettings {
    fn default() -> Self {
        SenderSettings {
            max_sends: 2,
            retry_first: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            metrics_listen: None,
            resume_for: Duration::from_secs(10 * 60),
            keepalive: crate::wire::Keepalive::DEFAULT.interval,
            bwlimit: Rate::NONE,
            bwlimit_window: None,
            hooks: HookSettings::default(),
        }
    }
}

/// Reads and validates the file at `path`, which must exist.
///
/// # Errors
///
/// [`ConfigError::Missing`] when the file is not there, [`ConfigError::Read`]
/// when it cannot be read, [`ConfigError::Syntax`] for TOML it cannot parse
/// (with the line), [`ConfigError::Invalid`] naming the key of an unknown key
/// or a refused value.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ConfigError::Missing {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `Some(path)`: that file, which must exist. `None`: [`DEFAULT_PATH`] if it exists,
/// else the defaults, so a fresh install runs without writing a config first.
///
/// # Errors
///
/// As [`load`].
pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
    load_or_default_at(path, Path::new(DEFAULT_PATH))
}

fn load_or_default_at(path: Option<&Path>, default_path: &Path) -> Result<Config, ConfigError> {
    match path {
        Some(path) => load(path),
        // Only absence means "use the defaults": an unreadable default file is an
        // error, or a permissions mistake would silently drop the admin's settings.
        None => match load(default_path) {
            Err(ConfigError::Missing { .. }) => Ok(Config::default()),
            other => other,
        },
    }
}

/// Parses `text` as the file `path` (named in errors) and validates it.
///
/// # Errors
///
/// As [`load`]: [`ConfigError::Syntax`] or [`ConfigError::Invalid`].
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.and_then(|s| text.get(..s.start))
            .map(|before| before.matches('\n').count() + 1)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: line_of(e.span()),
        reason: one_line(e.message()),
    })?;
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        // The path names the key at fault, unknown keys included.
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = one_line(inner.message());
        let reason = match message.strip_prefix("unknown field ") {
            Some(rest) => match rest.split_once(", ") {
                Some((_, expected)) => format!("unknown key ({expected})"),
                None => "unknown key".to_string(),
            },
            None => message,
        };
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(inner.span()),
            key,
            reason,
        }
    })?;
    config
        .validate()
        .map_err(|(key, reason)| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: None,
            key: key.to_string(),
            reason,
        })?;
    Ok(config)
}

impl Config {
    /// Range checks serde's types cannot express. Returns the offending key and why.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let r = &self.receiver;
        let s = &self.sender;
        // A daemon's working directory is whatever systemd gave it, so a relative
        // state_dir would land somewhere nobody looks.
        if !self.state_dir.is_absolute() {
            return Err(("state_dir", "must be an absolute path".into()));
        }
        for (key, port) in [
            ("receiver.meta_port", r.meta_port),
            ("receiver.data_port", r.data_port),
        ] {
            // 0 means "any free port" to the OS, which a peer could never be told.
            if port == 0 {
                return Err((key, "port must be between 1 and 65535".into()));
            }
        }
        if r.meta_port == r.data_port {
            return Err((
                "receiver.data_port",
                format!(
                    "{} is also receiver.meta_port; they must differ",
                    r.data_port
                ),
            ));
        }
        for (key, count) in [
            ("receiver.max_receives", r.max_receives),
            ("receiver.max_replicas_per_line", r.max_replicas_per_line),
            ("sender.max_sends", s.max_sends),
        ] {
            if count == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        // Each is added to a clock reading (a deadline, a retry time), which one
        // beyond any real wait would overflow. `true`: 0s means "none" there.
        for (key, d, zero_ok) in [
            ("receiver.slot_wait", r.slot_wait, true),
            ("receiver.handshake_timeout", r.handshake_timeout, false),
            ("receiver.data_timeout", r.data_timeout, false),
            ("receiver.resume_window", r.resume_window, true),
            ("receiver.keepalive", r.keepalive, false),
            ("sender.keepalive", s.keepalive, false),
            ("sender.retry_first", s.retry_first, false),
            ("sender.retry_max", s.retry_max, false),
            ("sender.resume_for", s.resume_for, true),
            ("sender.hooks.timeout", s.hooks.timeout, false),
        ] {
            if d.is_zero() && !zero_ok {
                return Err((key, "must be longer than 0s".into()));
            }
            if d > MAX_DURATION {
                return Err((key, "must be at most 366d".into()));
            }
        }
        for (key, spec) in [
            ("receiver.audit", &r.audit),
            ("history.prune", &self.history.prune),
        ] {
            job_cron(spec).map_err(|reason| (key, reason))?;
        }
        if self.history.keep_days == 0 {
            return Err(("history.keep_days", "must be at least 1".into()));
        }
        if s.retry_first < crate::schedule::MIN_INTERVAL {
            return Err((
                "sender.retry_first",
                "must be at least 60s: a retry is a run, and runs come at most once a minute"
                    .into(),
            ));
        }
        if s.retry_first > s.retry_max {
            return Err((
                "sender.retry_first",
                format!(
                    "{} is longer than sender.retry_max ({})",
                    humantime::format_duration(s.retry_first),
                    humantime::format_duration(s.retry_max)
                ),
            ));
        }
        Ok(())
    }
}

/// The longest duration any setting takes: a year and a day.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Durations as humantime strings ("30s", "1h 30m"), the form `ferry task add` takes.
#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
