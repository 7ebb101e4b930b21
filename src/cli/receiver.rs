//! `ferry receiver`: the receiver daemon in the foreground, until SIGINT or SIGTERM.
//! Prints one readiness line on stdout, and tells systemd READY=1, once both ports are bound.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::oneshot;

use super::ctx::Ctx;
use super::logging::Logging;
use super::output;
use super::signals::{Asked, Signals};
use super::values;
use crate::config;
use crate::metrics::{Endpoint, ReceiverMetrics};
use crate::notify::{self, Notifier};
use crate::receiver::{Config, Receiver, Shared};

/// How often the STATUS= line is brought up to date.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Flags override the config file's `[receiver]` settings, which override the defaults.
#[derive(Debug, Args)]
pub struct ReceiverArgs {
    /// Address to listen on, both ports [default: 0.0.0.0].
    #[arg(long, value_name = "ADDR", value_parser = values::listen_ip)]
    listen: Option<IpAddr>,
    /// Meta (control) port; 0 picks a free one, named in the readiness line [default: 10003].
    #[arg(long, allow_negative_numbers = true, value_parser = values::listen_port)]
    meta_port: Option<u16>,
    /// Data (bulk) port; 0 picks a free one, named in the readiness line [default: 10002].
    #[arg(long, allow_negative_numbers = true, value_parser = values::listen_port)]
    data_port: Option<u16>,
    /// Receives running at once, over all peers; more wait for a slot [default: 4].
    #[arg(long, allow_negative_numbers = true, value_parser = values::receive_slots)]
    max_receives: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics [default: the config
    /// file's receiver.metrics_listen, else off]. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT", value_parser = values::listen_socket)]
    metrics: Option<SocketAddr>,
}

pub fn run(ctx: &Ctx, args: ReceiverArgs) -> anyhow::Result<()> {
    // Refuses an uninitialized state dir as bad input before anything starts.
    drop(ctx.store()?);
    ctx.identity()?;
    let file = &ctx.config.receiver;
    let mut config = Config::new(&ctx.state_dir);
    config.listen = args.listen.unwrap_or(file.listen);
    config.meta_port = args.meta_port.unwrap_or(file.meta_port);
    config.data_port = args.data_port.unwrap_or(file.data_port);
    // 0 and 0 are two free ports; any other pair must differ, wherever each came from.
    if config.meta_port != 0 {
        let which = match (args.meta_port, args.data_port) {
            (Some(_), Some(_)) => "--meta-port and --data-port",
            (Some(_), None) => "--meta-port and the configured data port",
            (None, Some(_)) => "the configured meta port and --data-port",
            (None, None) => "the configured meta and data ports",
        };
        values::distinct_ports(config.meta_port, config.data_port, which)?;
    }
    let max = args.max_receives.unwrap_or(u64::from(file.max_receives));
    config.max_receives = usize::try_from(max).unwrap_or(usize::MAX);
    config.handshake_timeout = file.handshake_timeout;
    config.data_timeout = file.data_timeout;
    config.keepalive = crate::wire::Keepalive::every(file.keepalive);
    config.slot_wait = file.slot_wait;
    config.resume_window = file.resume_window;
    config.audit =
        Some(crate::config::job_cron(&file.audit).unwrap_or_else(|_| file.audit.clone()));
    config.history = Some(ctx.config.history.retention());
    config.max_replicas_per_line = file.max_replicas_per_line;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let notifier = Notifier::from_env();
        let receiver = Receiver::bind(config).await?;
        if let Some(addr) = args.metrics.or(file.metrics_listen) {
            let endpoint = Endpoint::bind(addr).await?;
            // A daemon whose stdout went away keeps serving.
            if let Err(e) = output::write_stdout(format_args!(
                "ferry metrics: http://{}/metrics\n",
                endpoint.addr().unwrap_or(addr)
            )) {
                tracing::warn!(error = %e, "cannot print the metrics address");
            }
            let scrape = ReceiverMetrics::new(ctx.state_dir.clone(), receiver.shared());
            endpoint.serve(Arc::new(scrape));
        }
        let listening = format!(
            "listening: meta {}, data {}",
            receiver.meta_addr(),
            receiver.data_addr()
        );
        // Before the readiness line: a SIGTERM right after it must stop the
        // receiver cleanly, not kill it.
        let shutdown = signals(ctx, notifier.clone(), listening.clone())?;
        if let Err(e) = output::write_stdout(format_args!("ferry receiver {listening}\n")) {
            tracing::warn!(error = %e, "cannot print the readiness line");
        }
        notifier.ready(&format!("{listening}; 0 receive(s) in flight"));
        if let Some(period) = notify::watchdog_period() {
            notify::spawn_watchdog(notifier.clone(), period, None);
        }
        tokio::spawn(report(receiver.shared(), notifier, listening));
        receiver
            .serve(async {
                let _ = shutdown.await;
            })
            .await?;
        anyhow::Ok(())
    })
}

/// Keeps the STATUS= line on the receives in flight.
async fn report(shared: Arc<Shared>, notifier: Notifier, listening: String) {
    let mut shown = 0;
    let mut tick = tokio::time::interval(STATUS_EVERY);
    loop {
        tick.tick().await;
        let now = shared.receives_running();
        if now != shown {
            shown = now;
            notifier.status(&format!("{listening}; {now} receive(s) in flight"));
        }
    }
}

/// Handles the signals systemd sends: SIGHUP reloads what can change while
/// running (the log level) and names what needs a restart; the first SIGINT or
/// SIGTERM resolves the returned receiver.
fn signals(
    ctx: &Ctx,
    notifier: Notifier,
    listening: String,
) -> anyhow::Result<oneshot::Receiver<()>> {
    let mut signals = Signals::stop_and_reload()?;
    let (stop, stopped) = oneshot::channel();
    let path = ctx.config_path.clone();
    let running = ctx.config.receiver.clone();
    let logging = ctx.logging.clone();
    tokio::spawn(async move {
        while signals.next().await == Asked::Reload {
            notifier.reloading();
            reload(path.as_deref(), &running, &logging);
            notifier.ready(&format!("{listening}; configuration reloaded"));
        }
        notifier.stopping("stopping: aborting running receives");
        let _ = stop.send(());
    });
    Ok(stopped)
}

/// Re-reads the configuration: the log level applies at once; a changed
/// `[receiver]` setting is named, since listeners and limits are set at start.
fn reload(path: Option<&std::path::Path>, running: &config::ReceiverSettings, logging: &Logging) {
    match config::load_or_default(path) {
        Ok(c) => {
            logging.set_level(c.log_level);
            if c.receiver != *running {
                tracing::warn!(
                    "SIGHUP: [receiver] settings changed; they apply at the next restart"
                );
            } else {
                tracing::info!("SIGHUP: configuration reloaded");
            }
        }
        Err(e) => tracing::warn!(error = %e, "SIGHUP: configuration not reloaded"),
    }
}
