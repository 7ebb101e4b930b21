//! The signals systemd and a terminal send a ferry process: SIGINT and SIGTERM
//! stop it cleanly, SIGHUP asks a daemon that supports it to reload its configuration.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::info;

/// What a signal asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Stop,
    Reload,
}

/// The handlers, installed when this is made: from then on these signals no
/// longer kill the process, they are waited for. Must be made inside a runtime.
pub struct Signals {
    int: Signal,
    term: Signal,
    /// None: SIGHUP keeps its default action.
    hup: Option<Signal>,
}

impl Signals {
    /// SIGINT and SIGTERM.
    pub fn stop() -> anyhow::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            hup: None,
        })
    }

    /// SIGINT and SIGTERM, and SIGHUP for reloading.
    pub fn stop_and_reload() -> anyhow::Result<Self> {
        let mut signals = Self::stop()?;
        signals.hup = Some(signal(SignalKind::hangup()).context("cannot handle SIGHUP")?);
        Ok(signals)
    }

    /// Waits for the next signal; a stop is logged with the signal's name.
    pub async fn next(&mut self) -> Asked {
        let Signals { int, term, hup } = self;
        let hup = async {
            match hup {
                Some(hup) => hup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = int.recv() => {
                info!("SIGINT: shutting down");
                Asked::Stop
            }
            _ = term.recv() => {
                info!("SIGTERM: shutting down");
                Asked::Stop
            }
            _ = hup => Asked::Reload,
        }
    }

    /// Resolves at the first SIGINT or SIGTERM.
    pub async fn stopped(mut self) {
        while self.next().await != Asked::Stop {}
    }
}
