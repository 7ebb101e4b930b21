//! `ferry replica …`: the replicas this appliance holds as a receiver, beyond
//! what the receiver records by itself (one file per subcommand).

use clap::Subcommand;

use super::ctx::Ctx;
use super::replica_adopt::{self, AdoptArgs};

#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// Take back the replicas found in the pools after the state database was
    /// lost, so the next run is incremental and retention applies to them.
    Adopt(AdoptArgs),
}

pub fn run(ctx: &Ctx, cmd: ReplicaCommand) -> anyhow::Result<()> {
    match cmd {
        ReplicaCommand::Adopt(args) => replica_adopt::adopt(ctx, &args),
    }
}
