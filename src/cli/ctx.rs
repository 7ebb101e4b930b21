//! What every command shares: the state dir and configuration (`Ctx`), and
//! `BadInput`, the user's mistakes, which exit 2 without changing anything.

use std::path::PathBuf;

use thiserror::Error;

use crate::config::Config;
use crate::store::{self, Store, Task};

/// A mistake in what the user asked for: exit code 2, and nothing was changed.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// A command that chose its own exit code and printed all it had to say
/// (`status --check`): no `ferry: ` line is added.
#[derive(Debug, Error)]
#[error("exit status {0}")]
pub struct Exit(pub u8);

/// Returns early with a `BadInput` built like `format!`.
macro_rules! bad_input {
    ($($arg:tt)*) => {
        return Err($crate::cli::ctx::BadInput(format!($($arg)*)).into())
    };
}
pub(crate) use bad_input;

/// What every command needs: where the state lives, and the configuration.
pub struct Ctx {
    pub state_dir: PathBuf,
    pub config: Config,
    /// The file `config` came from, when one was named; SIGHUP re-reads it.
    pub config_path: Option<PathBuf>,
    /// The daemons change the log level on SIGHUP through this.
    pub logging: super::logging::Logging,
}

impl Ctx {
    /// Opens the state database; an uninitialized state dir is the user's mistake.
    pub fn store(&self) -> anyhow::Result<Store> {
        match Store::open(&self.state_dir) {
            Err(e @ store::Error::NotInitialized(_)) => Err(BadInput(e.to_string()).into()),
            other => Ok(other?),
        }
    }
}

/// The task by that name, or the user's mistake.
pub fn existing(store: &Store, name: &str) -> anyhow::Result<Task> {
    match store.task(name)? {
        Some(t) => Ok(t),
        None => bad_input!("no task named {name}; `ferry task list` shows the tasks"),
    }
}
