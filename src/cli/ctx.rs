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
    /// Opens the state database; a state dir that is missing, misplaced or
    /// unusable as it is (see [`store::Error::is_state_dir_problem`]) is the
    /// user's to fix.
    pub fn store(&self) -> anyhow::Result<Store> {
        match Store::open(&self.state_dir) {
            Err(store::Error::NotInitialized(dir)) if crate::identity::exists(&dir) => {
                Err(BadInput(lost_database(&dir)).into())
            }
            Err(e) if e.is_state_dir_problem() => Err(BadInput(e.to_string()).into()),
            other => Ok(other?),
        }
    }

    /// This appliance's key and certificate; a deleted, damaged or exposed
    /// one is the user's to fix (the message names how), not a failure.
    pub fn identity(&self) -> anyhow::Result<crate::identity::Identity> {
        use crate::identity::{self, Error};
        match identity::load(&self.state_dir) {
            Err(
                e @ (Error::Missing { .. } | Error::Corrupt { .. } | Error::KeyPermissions { .. }),
            ) => Err(BadInput(e.to_string()).into()),
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

/// A state dir that has this appliance's key and certificate but no database.
pub fn lost_database(dir: &std::path::Path) -> String {
    format!(
        "{} has this appliance's key and certificate but no state database (lost?); \
         `ferry init --repair` rebuilds it, keeping this appliance's uuid, key and certificate",
        dir.display()
    )
}
