//! `ferry sender`: the scheduler daemon, with the signals systemd sends it and
//! what it tells systemd (readiness, status, watchdog, reloads).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::ctx::Ctx;
use super::output;
use super::signals::{Asked, Signals};
use super::values;
use crate::config;
use crate::metrics::{Endpoint, SenderMetrics};
use crate::notify::{self, Heartbeat, Notifier};
use crate::sender::{Daemon, DaemonConfig, Event};

/// The scheduler loop turns at least every second; silent this long, it is stuck.
const STUCK_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct SenderArgs {
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics [default: the config
    /// file's sender.metrics_listen, else off]. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT", value_parser = values::listen_socket)]
    metrics: Option<SocketAddr>,
}

pub fn run(ctx: &Ctx, args: SenderArgs) -> anyhow::Result<()> {
    ctx.store()?;
    ctx.identity()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let notifier = Notifier::from_env();
        if let Some(addr) = args.metrics.or(ctx.config.sender.metrics_listen) {
            let endpoint = Endpoint::bind(addr).await?;
            // A daemon whose stdout went away keeps working.
            if let Err(e) = output::write_stdout(format_args!(
                "ferry metrics: http://{}/metrics\n",
                endpoint.addr().unwrap_or(addr)
            )) {
                warn!(error = %e, "cannot print the metrics address");
            }
            endpoint.serve(Arc::new(SenderMetrics::new(ctx.state_dir.clone())));
        }
        let mut config = DaemonConfig::new(ctx.state_dir.clone(), ctx.config.sender.clone());
        config.history = Some(ctx.config.history.retention());
        let daemon = Daemon::new(config);
        let events = daemon.subscribe();
        let shutdown = CancellationToken::new();
        let (settings_tx, settings_rx) = watch::channel(ctx.config.sender.clone());
        let mut signals = Signals::stop_and_reload()?;
        let config_path = ctx.config_path.clone();
        let heartbeat = Heartbeat::new();
        let signals = {
            let shutdown = shutdown.clone();
            let notifier = notifier.clone();
            let logging = ctx.logging.clone();
            async move {
                while signals.next().await == Asked::Reload {
                    notifier.reloading();
                    match config::load_or_default(config_path.as_deref()) {
                        Ok(c) => {
                            logging.set_level(c.log_level);
                            settings_tx.send_replace(c.sender);
                        }
                        Err(e) => warn!(error = %e, "SIGHUP: configuration not reloaded"),
                    }
                    notifier.ready("configuration reloaded");
                }
                notifier.stopping("stopping: interrupting running transfers");
                shutdown.cancel();
            }
        };
        tokio::spawn(signals);
        tokio::spawn(report(events, notifier.clone(), heartbeat.clone()));
        if let Some(period) = notify::watchdog_period() {
            notify::spawn_watchdog(notifier, period, Some((heartbeat, STUCK_AFTER)));
        }
        daemon.run(shutdown, settings_rx).await?;
        Ok(())
    })
}

/// Follows the scheduler's events: the readiness line on stdout (scripts and
/// tests wait for it) and READY=1 once the tasks are loaded, a STATUS= line
/// whenever the number of tasks or sends in flight changes, and a heartbeat
/// for every turn of the scheduler loop.
async fn report(mut events: broadcast::Receiver<Event>, notifier: Notifier, heartbeat: Heartbeat) {
    let mut ready = false;
    let (mut tasks, mut sending) = (0usize, 0usize);
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // Missed events: the counts may be off until the next ones; say so.
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "status reporting fell behind the scheduler");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        heartbeat.beat();
        let before = (tasks, sending);
        match event {
            Event::Loaded { tasks: n } => tasks = n,
            Event::Started { .. } => sending += 1,
            Event::Finished { .. } => sending = sending.saturating_sub(1),
            _ => {}
        }
        let status = format!("{tasks} task(s) scheduled, {sending} send(s) in flight");
        if !ready && matches!(event, Event::Loaded { .. }) {
            ready = true;
            if let Err(e) = output::write_stdout(format_args!(
                "ferry sender running: {tasks} task(s) scheduled\n"
            )) {
                warn!(error = %e, "cannot print the readiness line");
            }
            notifier.ready(&status);
        } else if ready && before != (tasks, sending) {
            notifier.status(&status);
        }
    }
}
