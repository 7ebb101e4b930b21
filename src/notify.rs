//! Telling systemd how a daemon is doing (`sd_notify`): READY=1 once it serves,
//! STATUS= lines, WATCHDOG=1 while its own loop turns, RELOADING=1 around SIGHUP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Sends notifications when systemd asked for them (`NOTIFY_SOCKET` set), and
/// nothing otherwise. Cheap to clone; every send is best effort and logged at
/// debug level when it fails, since a daemon must not stop over its status.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// A notifier for this process, enabled when systemd passed `NOTIFY_SOCKET`.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::debug!(error = %e, "cannot notify systemd");
        }
    }

    /// READY=1 with a status line: the daemon serves (ports bound, tasks loaded).
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// STATUS=…: what `systemctl status` shows beside the unit.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// RELOADING=1 (with MONOTONIC_USEC, which newer systemd wants with it):
    /// a reload began; [`Notifier::ready`] ends it.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// STOPPING=1: shutdown began.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// WATCHDOG=1.
    fn pet(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

/// Proof that a daemon's main loop still turns: the loop calls [`Heartbeat::beat`],
/// the watchdog pets systemd only while beats are recent.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds from `origin` to the last beat.
    last: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new()
    }
}

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn beat(&self) {
        self.last.store(self.millis(), Ordering::Relaxed);
    }

    /// Time since the last beat (or since creation).
    pub fn since(&self) -> Duration {
        Duration::from_millis(
            self.millis()
                .saturating_sub(self.last.load(Ordering::Relaxed)),
        )
    }
}

/// The watchdog period systemd set for this process (`WatchdogSec=`), if any.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// Pets systemd's watchdog every half `period` from a task on the current tokio
/// runtime, while `heartbeat` (when given: the heartbeat and how long it may be
/// silent) beats. A runtime whose workers are all stuck, or a main loop that
/// stopped turning, stops petting, and systemd restarts the service.
pub fn spawn_watchdog(
    notifier: Notifier,
    period: Duration,
    heartbeat: Option<(Heartbeat, Duration)>,
) -> tokio::task::JoinHandle<()> {
    let every = (period / 2).max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut silent = false;
        loop {
            tick.tick().await;
            match &heartbeat {
                Some((h, quiet)) if h.since() > *quiet => {
                    if !silent {
                        tracing::error!(since = ?h.since(), "the main loop stopped turning; \
                            no longer petting the systemd watchdog");
                    }
                    silent = true;
                }
                _ => {
                    silent = false;
                    notifier.pet();
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_measures_the_time_since_the_last_beat() {
        let h = Heartbeat::new();
        std::thread::sleep(Duration::from_millis(30));
        assert!(h.since() >= Duration::from_millis(30));
        h.beat();
        assert!(h.since() < Duration::from_millis(30));
    }
}
