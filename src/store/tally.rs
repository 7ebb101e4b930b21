//! History rows as the metrics count them: id, labels, status and byte counts,
//! read incrementally (rows after an id, or rows by id) so a scrape never rescans.

use super::{Result, Status, Store};

/// One history row, as much as a counter needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyRow {
    pub id: i64,
    /// Send rows: `[task]`; receive rows: `[source, share]`.
    pub labels: Vec<String>,
    pub status: Status,
    pub stream_bytes: u64,
    pub wire_bytes: u64,
}

/// Which history a tally reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    Send,
    Receive,
}

impl History {
    fn select(self) -> &'static str {
        match self {
            History::Send => {
                "SELECT id, status, stream_bytes, wire_bytes, task, NULL FROM send_history"
            }
            History::Receive => {
                "SELECT id, status, stream_bytes, wire_bytes, source, share FROM receive_history"
            }
        }
    }
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TallyRow> {
    let mut labels = vec![r.get::<_, String>(4)?];
    if let Some(share) = r.get::<_, Option<String>>(5)? {
        labels.push(share);
    }
    Ok(TallyRow {
        id: r.get(0)?,
        status: r.get(1)?,
        stream_bytes: r.get(2)?,
        wire_bytes: r.get(3)?,
        labels,
    })
}

impl Store {
    /// Rows of `history` with an id above `after`, oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The state database failed.
    pub fn tally_after(&self, history: History, after: i64, limit: u32) -> Result<Vec<TallyRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "{} WHERE id > ?1 ORDER BY id LIMIT ?2",
            history.select()
        ))?;
        let rows = stmt.query_map((after, limit), from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The row `id` of `history`, if it exists.
    ///
    /// # Errors
    ///
    /// The state database failed.
    pub fn tally_row(&self, history: History, id: i64) -> Result<Option<TallyRow>> {
        use rusqlite::OptionalExtension;
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("{} WHERE id = ?1", history.select()))?;
        Ok(stmt.query_row([id], from_row).optional()?)
    }

    /// When each source was last seen starting a receive: (source, time).
    ///
    /// # Errors
    ///
    /// The state database failed.
    pub fn last_receive_per_source(&self) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT source, max(started_at) FROM receive_history GROUP BY source ORDER BY source",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, super::db::Ts>(1)?.0)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
