//! `ferry receiver`: the receiver daemon in the foreground, until SIGINT or SIGTERM.
//! Prints one readiness line on stdout once both ports are bound.

use std::io::Write;
use std::net::IpAddr;

use anyhow::Context;
use clap::Args;

use super::appliance::{DEFAULT_DATA_PORT, DEFAULT_META_PORT};
use super::Ctx;
use crate::receiver::{Config, Receiver};

#[derive(Debug, Args)]
pub struct ReceiverArgs {
    /// Address to listen on (both ports).
    #[arg(long, default_value = "0.0.0.0")]
    listen: IpAddr,
    /// Meta (control) port; 0 picks a free one, named in the readiness line.
    #[arg(long, default_value_t = DEFAULT_META_PORT)]
    meta_port: u16,
    /// Data (bulk) port; 0 picks a free one, named in the readiness line.
    #[arg(long, default_value_t = DEFAULT_DATA_PORT)]
    data_port: u16,
    /// Receives running at once, over all peers; more are refused as busy.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_receives: u64,
}

pub fn run(ctx: &Ctx, args: ReceiverArgs) -> anyhow::Result<()> {
    // Refuses an uninitialized state dir as bad input before anything starts.
    drop(ctx.store()?);
    let mut config = Config::new(&ctx.state_dir);
    config.listen = args.listen;
    config.meta_port = args.meta_port;
    config.data_port = args.data_port;
    config.max_receives = usize::try_from(args.max_receives).unwrap_or(usize::MAX);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let receiver = Receiver::bind(config).await?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ferry receiver listening: meta {}, data {}",
            receiver.meta_addr(),
            receiver.data_addr()
        )?;
        out.flush()?;
        drop(out);
        let shutdown = shutdown_signal()?;
        receiver.serve(shutdown).await?;
        anyhow::Ok(())
    })
}

/// Resolves at the first SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    })
}
