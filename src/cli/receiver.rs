//! `ferry receiver`: the receiver daemon in the foreground, until SIGINT or SIGTERM.
//! Prints one readiness line on stdout once both ports are bound.

use std::io::Write;
use std::net::IpAddr;

use anyhow::Context;
use clap::Args;

use super::ctx::Ctx;
use super::signals::Signals;
use crate::receiver::{Config, Receiver};

/// Flags override the config file's `[receiver]` settings, which override the defaults.
#[derive(Debug, Args)]
pub struct ReceiverArgs {
    /// Address to listen on, both ports [default: 0.0.0.0].
    #[arg(long)]
    listen: Option<IpAddr>,
    /// Meta (control) port; 0 picks a free one, named in the readiness line [default: 10003].
    #[arg(long)]
    meta_port: Option<u16>,
    /// Data (bulk) port; 0 picks a free one, named in the readiness line [default: 10002].
    #[arg(long)]
    data_port: Option<u16>,
    /// Receives running at once, over all peers; more are refused as busy [default: 4].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_receives: Option<u64>,
}

pub fn run(ctx: &Ctx, args: ReceiverArgs) -> anyhow::Result<()> {
    // Refuses an uninitialized state dir as bad input before anything starts.
    drop(ctx.store()?);
    let file = &ctx.config.receiver;
    let mut config = Config::new(&ctx.state_dir);
    config.listen = args.listen.unwrap_or(file.listen);
    config.meta_port = args.meta_port.unwrap_or(file.meta_port);
    config.data_port = args.data_port.unwrap_or(file.data_port);
    let max = args.max_receives.unwrap_or(u64::from(file.max_receives));
    config.max_receives = usize::try_from(max).unwrap_or(usize::MAX);
    config.handshake_timeout = file.handshake_timeout;
    config.data_timeout = file.data_timeout;
    config.slot_wait = file.slot_wait;
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
        let shutdown = Signals::stop()?.stopped();
        receiver.serve(shutdown).await?;
        anyhow::Ok(())
    })
}
