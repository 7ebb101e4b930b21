//! The one-receive-at-a-time locks of (source, share), and whether the holder is
//! still receiving or has answered its sender and is only settling (retention).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

/// How often a `Begin` waiting for a settling receive looks again. Settling is
/// a few subvolume deletions, so polling costs nothing worth a wake-up channel.
const SETTLE_POLL: Duration = Duration::from_millis(25);

/// (source appliance uuid, share name).
pub(super) type ShareKey = (Uuid, String);

/// What the holder of a share's lock is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Streaming, verifying, or parked for a resume: a second receive is refused.
    Receiving,
    /// Answered `received` and prunes the line: the sender's next run may
    /// already be here, and it waits instead of being refused as busy.
    Settling,
}

/// The locks of every (source, share) with a receive in progress.
#[derive(Debug, Default)]
pub(super) struct ShareLocks {
    held: Mutex<HashMap<ShareKey, Hold>>,
}

/// A poisoned mutex still guards a consistent map: every critical section is
/// one insert, update or remove.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ShareLocks {
    /// Takes the lock of (source, share), or `None` while anyone holds it.
    pub(super) fn try_lock(&self, source: Uuid, share: &str) -> Option<ShareLock<'_>> {
        let key = (source, share.to_owned());
        // The guard must be gone before a ShareLock exists: dropping one locks
        // the same mutex.
        let taken = {
            let mut held = lock(&self.held);
            if held.contains_key(&key) {
                false
            } else {
                held.insert(key.clone(), Hold::Receiving);
                true
            }
        };
        taken.then(|| ShareLock {
            locks: self,
            key: Some(key),
        })
    }

    /// Takes the lock of (source, share), waiting up to `within` while its
    /// holder is only settling; `None` at once while a receive holds it, and
    /// `None` when the settling outlasts `within`.
    pub(super) async fn lock_after_settling(
        &self,
        source: Uuid,
        share: &str,
        within: Duration,
    ) -> Option<ShareLock<'_>> {
        let key = (source, share.to_owned());
        let deadline = tokio::time::Instant::now().checked_add(within);
        loop {
            if let Some(taken) = self.try_lock(source, share) {
                return Some(taken);
            }
            let settling = lock(&self.held).get(&key) == Some(&Hold::Settling);
            let late = deadline.is_none_or(|d| tokio::time::Instant::now() >= d);
            if !settling || late {
                return None;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// Marks the held lock of (source, share) as settling: its receive has
    /// answered the sender, and only retention is left.
    pub(super) fn settling(&self, source: Uuid, share: &str) {
        if let Some(hold) = lock(&self.held).get_mut(&(source, share.to_owned())) {
            *hold = Hold::Settling;
        }
    }

    /// The guard of a lock that stayed held with no guard (see
    /// [`ShareLock::keep`]): a parked receive being taken back.
    pub(super) fn resume(&self, key: ShareKey) -> ShareLock<'_> {
        ShareLock {
            locks: self,
            key: Some(key),
        }
    }
}

/// The lock of one (source, share). Owned by the session, so a session that dies
/// (dropped connection, keepalive timeout, panic) releases it when it unwinds:
/// that is how a stale lock expires, with no timer.
pub(super) struct ShareLock<'a> {
    locks: &'a ShareLocks,
    /// `None` once kept for a parked receive.
    key: Option<ShareKey>,
}

impl ShareLock<'_> {
    /// Leaves the share locked after this guard is gone: a parked receive
    /// holds it until it is taken or discarded. Returns the locked key.
    pub(super) fn keep(mut self) -> Option<ShareKey> {
        self.key.take()
    }
}

impl Drop for ShareLock<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.locks.held).remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins: the sender's next run, arriving while the previous receive of the
    /// same share still pruned after answering, was refused as busy (found by
    /// the randomized workload). It waits for the settling instead.
    #[tokio::test(start_paused = true)]
    async fn a_settling_holder_is_waited_for_and_a_receiving_one_refused_at_once() {
        let locks = ShareLocks::default();
        let source = Uuid::new_v4();
        let first = locks.try_lock(source, "photos").expect("free");
        assert!(locks.try_lock(source, "photos").is_none());
        let started = tokio::time::Instant::now();
        let refused = locks
            .lock_after_settling(source, "photos", Duration::from_secs(60))
            .await;
        assert!(refused.is_none(), "a receiving holder is not waited for");
        assert_eq!(started.elapsed(), Duration::ZERO);

        locks.settling(source, "photos");
        let release = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(first);
        };
        let (got, ()) = tokio::join!(
            locks.lock_after_settling(source, "photos", Duration::from_secs(60)),
            release
        );
        let second = got.expect("taken once the settling holder let go");
        assert!(started.elapsed() >= Duration::from_secs(3));
        // Another share of the same source is never held up.
        assert!(locks.try_lock(source, "music").is_some());
        drop(second);
        assert!(locks.try_lock(source, "photos").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn settling_longer_than_the_wait_is_refused_and_a_kept_lock_stays_held() {
        let locks = ShareLocks::default();
        let source = Uuid::new_v4();
        let first = locks.try_lock(source, "photos").expect("free");
        locks.settling(source, "photos");
        let started = tokio::time::Instant::now();
        let got = locks
            .lock_after_settling(source, "photos", Duration::from_secs(5))
            .await;
        assert!(got.is_none());
        assert!(started.elapsed() >= Duration::from_secs(5));

        let key = first.keep().expect("a held key");
        assert!(
            locks.try_lock(source, "photos").is_none(),
            "kept for a park"
        );
        drop(locks.resume(key));
        assert!(locks.try_lock(source, "photos").is_some());
    }
}
