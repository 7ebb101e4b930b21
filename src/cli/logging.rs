//! Where logs go: to the journal with syslog priorities and structured fields when
//! systemd connected stderr to it (`JOURNAL_STREAM`), else one line per event on stderr.

use std::sync::Arc;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogLevel;

/// The running logger's level, changeable by a reload (SIGHUP) unless `FERRY_LOG`
/// fixed it.
#[derive(Clone, Default)]
pub struct Logging {
    filter: Option<Arc<reload::Handle<EnvFilter, Registry>>>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging").finish_non_exhaustive()
    }
}

impl Logging {
    /// Applies a reloaded `log_level`; `FERRY_LOG`, when set, still wins.
    pub fn set_level(&self, level: LogLevel) {
        if std::env::var_os("FERRY_LOG").is_some() {
            return;
        }
        if let Some(handle) = &self.filter {
            if let Err(e) = handle.reload(level_filter(level.as_str())) {
                tracing::warn!(error = %e, "cannot change the log level");
            }
        }
    }
}

/// The filter for a configured `log_level`: ferry's events and every crate's
/// at that level, but the cron scheduler's own bookkeeping ("Uninited", "Job
/// creator created" at info) only when it warns. `FERRY_LOG` is taken as
/// written, so `FERRY_LOG=tokio_cron_scheduler=debug` still shows it.
fn level_filter(level: &str) -> EnvFilter {
    EnvFilter::new(format!("{level},tokio_cron_scheduler=warn"))
}

/// Whether stderr is the journal stream systemd set up: `JOURNAL_STREAM` names
/// its device and inode, so a child whose stderr was redirected is not fooled.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    stream.to_string_lossy() == format!("{}:{}", stat.st_dev, stat.st_ino)
}

/// NO_COLOR (<https://no-color.org>): present and not empty turns colors off.
pub fn colors_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Starts logging at `default_level` (`FERRY_LOG` overrides it).
///
/// Under systemd, events go to the journal's native socket: ERROR is priority 3
/// (err), WARN 4, INFO 5 (notice), DEBUG 6, TRACE 7, and every field of an event
/// becomes a journal field of its upper-case name (`journalctl TASK=photos`).
/// When that socket cannot be opened, and everywhere else, events go to stderr,
/// one line each, colored only on a terminal and without NO_COLOR.
pub fn init(default_level: &str) -> Logging {
    let filter =
        EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| level_filter(default_level));
    let (filter, handle) = reload::Layer::new(filter);
    let journald = stderr_is_journal()
        .then(|| {
            tracing_journald::layer().map(|l| {
                l.with_field_prefix(None)
                    .with_syslog_identifier("ferry".to_string())
            })
        })
        .and_then(Result::ok);
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && colors_allowed())
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init()
        .is_ok();
    Logging {
        filter: installed.then(|| Arc::new(handle)),
    }
}
