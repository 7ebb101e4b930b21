//! Counters rebuilt from history: every finished row counted once, read
//! incrementally so a scrape costs the rows written since the last one.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{self, History, Status, Store, TallyRow};

/// Rows read per query while catching up (the first scrape reads all history).
const BATCH: u32 = 10_000;

/// Totals per label set, of finished rows only: a running row is counted once
/// it ends, so a counter never goes down.
#[derive(Debug)]
pub struct Tally {
    history: History,
    /// The highest id read so far.
    seen: i64,
    /// Rows read while still running: asked for again until they end.
    running: BTreeSet<i64>,
    /// (labels, status) -> rows.
    pub runs: BTreeMap<(Vec<String>, &'static str), u64>,
    /// labels -> (stream bytes, wire bytes) of finished rows.
    pub bytes: BTreeMap<Vec<String>, (u64, u64)>,
}

impl Tally {
    pub fn new(history: History) -> Tally {
        Tally {
            history,
            seen: 0,
            running: BTreeSet::new(),
            runs: BTreeMap::new(),
            bytes: BTreeMap::new(),
        }
    }

    /// Counts the rows that ended since the last call.
    ///
    /// # Errors
    ///
    /// The state database failed; what was counted before stays counted.
    pub fn update(&mut self, store: &Store) -> store::Result<()> {
        for id in self.running.clone() {
            match store.tally_row(self.history, id)? {
                Some(row) if row.status == Status::Running => {}
                Some(row) => {
                    self.running.remove(&id);
                    self.count(row);
                }
                // History is never deleted; a row that vanished has nothing to count.
                None => {
                    self.running.remove(&id);
                }
            }
        }
        loop {
            let rows = store.tally_after(self.history, self.seen, BATCH)?;
            let full = rows.len() == BATCH as usize;
            for row in rows {
                self.seen = self.seen.max(row.id);
                if row.status == Status::Running {
                    self.running.insert(row.id);
                } else {
                    self.count(row);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn count(&mut self, row: TallyRow) {
        let runs = self
            .runs
            .entry((row.labels.clone(), row.status.as_str()))
            .or_default();
        *runs = runs.saturating_add(1);
        let bytes = self.bytes.entry(row.labels).or_default();
        bytes.0 = bytes.0.saturating_add(row.stream_bytes);
        bytes.1 = bytes.1.saturating_add(row.wire_bytes);
    }
}
