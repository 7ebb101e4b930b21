//! One run per task at a time, across processes: the CLI's `task run` and the
//! scheduler daemon take the same lock file, and the kernel drops it if we die.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// Held while a run of the task goes on; released on drop or process death.
#[derive(Debug)]
pub struct TaskLock {
    _file: Flock<File>,
}

impl TaskLock {
    /// `Ok(None)` when another run holds the lock.
    ///
    /// # Errors
    ///
    /// The I/O error when the lock file cannot be created or locked.
    pub fn try_acquire(state_dir: &Path, task: &str) -> std::io::Result<Option<TaskLock>> {
        let dir = state_dir.join("locks");
        fs::create_dir_all(&dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join(format!("{task}.lock")))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(Some(TaskLock { _file: file })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(errno.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = TaskLock::try_acquire(dir.path(), "photos").expect("lock");
        assert!(first.is_some());
        assert!(TaskLock::try_acquire(dir.path(), "photos")
            .expect("lock")
            .is_none());
        assert!(TaskLock::try_acquire(dir.path(), "docs")
            .expect("lock")
            .is_some());
        drop(first);
        assert!(TaskLock::try_acquire(dir.path(), "photos")
            .expect("lock")
            .is_some());
    }
}
