//! `ferry replica …`: the replicas this appliance holds as a receiver, beyond
//! what the receiver records by itself (one file per subcommand).

use clap::Subcommand;

use super::ctx::Ctx;
use super::replica_adopt::{self, AdoptArgs};
use super::replica_list::{self, ListArgs};
use super::replica_restore::{self, RestoreArgs};

#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// Take back the replicas found in the pools after the state database was
    /// lost, so the next run is incremental and retention applies to them.
    Adopt(AdoptArgs),
    /// List the verified replicas this appliance holds, newest first per line.
    List(ListArgs),
    /// Make a writable copy of a replica (a btrfs snapshot: instant, no space
    /// until written to), to serve as a share or to copy files from.
    Restore(RestoreArgs),
}

pub fn run(ctx: &Ctx, cmd: ReplicaCommand) -> anyhow::Result<()> {
    match cmd {
        ReplicaCommand::Adopt(args) => replica_adopt::adopt(ctx, &args),
        ReplicaCommand::List(args) => replica_list::list(ctx, &args),
        ReplicaCommand::Restore(args) => replica_restore::restore(ctx, &args),
    }
}
