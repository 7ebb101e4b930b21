//! This appliance's own name and uuid (one row, written by `ferry init`).

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use uuid::Uuid;

use super::db::{now, DbUuid, Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdentity {
    pub name: String,
    pub uuid: Uuid,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Records this appliance's identity. Fails if one is already recorded.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// An identity already recorded fails the single-row CHECK.
    pub fn set_identity(&self, name: &str, uuid: Uuid) -> Result<()> {
        self.conn().execute(
            "INSERT INTO identity (id, name, uuid, created_at) VALUES (1, ?1, ?2, ?3)",
            (name, DbUuid(uuid), Ts(now())),
        )?;
        Ok(())
    }

    /// This appliance's identity, if `ferry init` has run.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn identity(&self) -> Result<Option<LocalIdentity>> {
        let row = self
            .conn()
            .query_row(
                "SELECT name, uuid, created_at FROM identity WHERE id = 1",
                [],
                |r| {
                    Ok(LocalIdentity {
                        name: r.get(0)?,
                        uuid: r.get::<_, DbUuid>(1)?.0,
                        created_at: r.get::<_, Ts>(2)?.0,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }
}
