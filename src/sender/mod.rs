//! The sending side: the scheduler daemon, one run of a task (plan, snapshot
//! between hooks, stream, confirm, prune), retention, the per-task lock, and
//! connections to a target.

mod chores;
pub mod clock;
mod connect;
mod daemon;
mod error;
mod expect;
mod failback;
mod hooks;
mod job;
mod lock;
mod orphans;
mod pace;
pub mod plan;
mod retain;
mod run;
mod share;
mod slots;
mod snapshot;
mod stream;
mod transfer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use connect::Target;
pub use daemon::{Daemon, DaemonConfig, Event};
pub use error::Error;
pub use hooks::{Hook, HookError};
pub use job::run_task;
pub use lock::TaskLock;
pub use retain::{prune_task, zone_of, Entry, PruneReport};
pub use run::{Outcome, RunOptions, Sent};
pub use stream::Progress;
