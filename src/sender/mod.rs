//! The sending side: the scheduler daemon, one run of a task (plan, snapshot,
//! stream, confirm, prune), the per-task lock, and connections to a target.

mod chores;
pub mod clock;
mod connect;
mod daemon;
mod error;
mod job;
mod lock;
mod orphans;
mod pace;
pub mod plan;
mod slots;
mod stream;
mod transfer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use connect::Target;
pub use daemon::{Daemon, DaemonConfig, Event};
pub use error::Error;
pub use job::{run_task, Outcome, RunOptions};
pub use lock::TaskLock;
pub use stream::Progress;
