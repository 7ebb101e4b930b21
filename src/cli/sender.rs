//! `ferry sender`: the scheduler daemon, with the signals systemd sends it.

use anyhow::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::ctx::Ctx;
use super::signals::{Asked, Signals};
use crate::config;
use crate::sender::{Daemon, DaemonConfig, Event};

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.store()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let daemon = Daemon::new(DaemonConfig::new(
            ctx.state_dir.clone(),
            ctx.config.sender.clone(),
        ));
        let mut events = daemon.subscribe();
        let shutdown = CancellationToken::new();
        let (settings_tx, settings_rx) = watch::channel(ctx.config.sender.clone());
        let mut signals = Signals::stop_and_reload()?;
        let config_path = ctx.config_path.clone();
        let signals = {
            let shutdown = shutdown.clone();
            async move {
                while signals.next().await == Asked::Reload {
                    match config::load_or_default(config_path.as_deref()) {
                        Ok(c) => {
                            settings_tx.send_replace(c.sender);
                        }
                        Err(e) => warn!(error = %e, "SIGHUP: configuration not reloaded"),
                    }
                }
                shutdown.cancel();
            }
        };
        tokio::spawn(signals);
        // One line on stdout once the tasks are loaded: scripts and tests wait for it.
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if let Event::Loaded { tasks } = event {
                    println!("ferry sender running: {tasks} task(s) scheduled");
                    break;
                }
            }
        });
        daemon.run(shutdown, settings_rx).await?;
        Ok(())
    })
}
