//! The sending side: one run of a task (plan, snapshot, stream, confirm, prune),
//! the per-task lock, and connections to a target's receiver.

mod connect;
mod error;
mod job;
mod lock;
pub mod plan;

pub use connect::Target;
pub use error::Error;
pub use job::{run_task, Outcome, Progress};
pub use lock::TaskLock;
