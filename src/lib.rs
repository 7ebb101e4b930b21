//! ferry replicates btrfs shares between storage appliances on a schedule:
//! snapshot, incremental `btrfs send` over mutual TLS, verified receive, history in SQLite.
//!
//! The `ferry` binary is a thin CLI over this library; the daemons are library
//! functions so integration tests can start them in-process.

pub mod bandwidth;
pub mod btrfs;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod config_text;
pub mod estimate;
pub mod health;
pub mod history_settings;
pub mod hook_settings;
pub mod housekeeping;
pub mod identity;
pub mod listen_addr;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod receiver;
pub mod replica_layout;
pub mod retention;
pub mod schedule;
pub mod sender;
pub mod state_lock;
pub mod store;
pub mod wire;
