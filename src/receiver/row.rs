//! A receive's history row as a guard: however the receive ends, panics and
//! cancelled tasks included, the row ends too, never left `running`.

use super::shared::Shared;
use crate::store::{self, NewReceive, NewReplica, Status};
use crate::wire::StreamStats;

/// The receive's history row. Dropped unfinished it is finished as failed.
pub(super) struct Row<'a> {
    shared: &'a Shared,
    id: i64,
    open: bool,
}

impl<'a> Row<'a> {
    /// Inserts a `running` row for `new`.
    ///
    /// # Errors
    ///
    /// The store's.
    pub fn begin(shared: &'a Shared, new: &NewReceive<'_>) -> Result<Row<'a>, store::Error> {
        let id = shared.db(|st| st.begin_receive(new))?;
        Ok(Row {
            shared,
            id,
            open: true,
        })
    }

    /// Finishes the row failed with `reason`. Logged, not returned, when the
    /// store fails: the receive has failed already.
    pub fn fail(&mut self, reason: &str) {
        self.open = false;
        let id = self.id;
        if let Err(e) = self
            .shared
            .db(|s| s.finish_receive(id, Status::Failed, Some(reason), None))
        {
            tracing::error!(row = id, error = %e, "cannot record a failed receive");
        }
    }

    /// Records the replica and finishes the row succeeded, in one transaction;
    /// returns the replica's id.
    ///
    /// # Errors
    ///
    /// The store's; the row is then still open.
    pub fn commit(&mut self, replica: &NewReplica<'_>) -> Result<i64, store::Error> {
        let id = self.id;
        let committed = self.shared.db(|st| st.commit_replica(id, replica))?;
        self.open = false;
        Ok(committed)
    }

    /// The row's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Records that this receive continues a parked one from `offset` bytes.
    pub fn resumed_from(&self, offset: u64) {
        let id = self.id;
        if let Err(e) = self.shared.db(|s| s.set_receive_resumed_from(id, offset)) {
            tracing::warn!(row = id, error = %e, "cannot record where a receive resumed");
        }
    }

    /// Leaves the row `running`, parked at `offset` bytes until `window` has
    /// passed, with `reason`; whoever resumes or discards the parked receive
    /// finishes it.
    pub fn park(&mut self, offset: u64, window: std::time::Duration, reason: &str) {
        self.open = false;
        let id = self.id;
        let until = chrono::TimeDelta::from_std(window)
            .ok()
            .and_then(|w| chrono::Utc::now().checked_add_signed(w));
        if let Err(e) = self
            .shared
            .db(|s| s.park_receive(id, offset, until, reason))
        {
            tracing::error!(row = id, error = %e, "cannot record a parked receive");
        }
    }

    /// Records the send stream version the stream declared.
    pub fn stream_version(&self, version: u32) {
        let id = self.id;
        if let Err(e) = self
            .shared
            .db(|s| s.set_receive_stream_version(id, version))
        {
            tracing::warn!(row = id, error = %e, "cannot record the stream version");
        }
    }

    /// Writes the byte counts so far (uncompressed stream and wire bytes).
    pub fn progress(&self, stats: &StreamStats) {
        let (id, raw, wire) = (self.id, stats.raw_bytes(), stats.wire_bytes);
        if let Err(e) = self.shared.db(|s| s.set_receive_progress(id, raw, wire)) {
            tracing::warn!(row = id, error = %e, "cannot record receive progress");
        }
    }
}

impl Drop for Row<'_> {
    fn drop(&mut self) {
        if self.open {
            self.fail("the receive session ended unexpectedly; see the receiver's log");
        }
    }
}
