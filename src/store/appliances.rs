//! Peer appliances: where to reach them and the certificate fingerprint they must present.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row};
use uuid::Uuid;

use super::db::{now, DbUuid, Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appliance {
    pub id: i64,
    pub name: String,
    pub address: String,
    /// As printed by `ferry id` (`SHA256:<hex>`), normalized by the caller.
    pub fingerprint: String,
    pub meta_port: u16,
    pub data_port: u16,
    /// Learned at the peer's first authenticated contact; `None` until then.
    pub uuid: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewAppliance<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub fingerprint: &'a str,
    pub meta_port: u16,
    pub data_port: u16,
}

const COLUMNS: &str = "id, name, address, fingerprint, meta_port, data_port, uuid, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Appliance> {
    Ok(Appliance {
        id: r.get(0)?,
        name: r.get(1)?,
        address: r.get(2)?,
        fingerprint: r.get(3)?,
        meta_port: r.get(4)?,
        data_port: r.get(5)?,
        uuid: r.get::<_, Option<DbUuid>>(6)?.map(|u| u.0),
        created_at: r.get::<_, Ts>(7)?.0,
    })
}

impl Store {
    /// Records a peer appliance; returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// A name or fingerprint already recorded fails the UNIQUE constraint (also `Error::Sql`).
    pub fn add_appliance(&self, a: &NewAppliance<'_>) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO appliances (name, address, fingerprint, meta_port, data_port, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                a.name,
                a.address,
                a.fingerprint,
                a.meta_port,
                a.data_port,
                Ts(now()),
            ),
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Every peer appliance, by name.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn appliances(&self) -> Result<Vec<Appliance>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM appliances ORDER BY name"))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The peer appliance by that name, if it is known.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn appliance(&self, name: &str) -> Result<Option<Appliance>> {
        self.appliance_where("name = ?1", name)
    }

    /// The appliance presenting this certificate fingerprint, if it is known.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    pub fn appliance_by_fingerprint(&self, fingerprint: &str) -> Result<Option<Appliance>> {
        self.appliance_where("fingerprint = ?1", fingerprint)
    }

    fn appliance_where(&self, condition: &str, value: &str) -> Result<Option<Appliance>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM appliances WHERE {condition}"),
                [value],
                from_row,
            )
            .optional()?)
    }

    /// Changes how a peer is reached. `forget_uuid` clears the bound uuid, for a
    /// new fingerprint is a new identity whose uuid is learned again.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// A fingerprint another appliance has fails the UNIQUE constraint.
    pub fn update_appliance(&self, id: i64, a: &NewAppliance<'_>, forget_uuid: bool) -> Result<()> {
        self.conn().execute(
            "UPDATE appliances SET address = ?2, fingerprint = ?3, meta_port = ?4, data_port = ?5,
                 uuid = CASE WHEN ?6 THEN NULL ELSE uuid END
             WHERE id = ?1",
            (
                id,
                a.address,
                a.fingerprint,
                a.meta_port,
                a.data_port,
                forget_uuid,
            ),
        )?;
        Ok(())
    }

    /// Binds a peer's uuid on its first authenticated contact.
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// A uuid another appliance is bound to fails the UNIQUE constraint.
    pub fn set_appliance_uuid(&self, id: i64, uuid: Uuid) -> Result<()> {
        self.conn().execute(
            "UPDATE appliances SET uuid = ?2 WHERE id = ?1",
            (id, DbUuid(uuid)),
        )?;
        Ok(())
    }

    /// Removes an appliance; returns false when there was none by that name.
    /// Tasks that target it block the removal (the schema says RESTRICT).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`](crate::store::Error::Sql) when SQLite fails: the database is busy past
    /// the 10 s busy timeout, the disk is full, or the file is damaged.
    /// A task still targeting it fails the foreign key (RESTRICT).
    pub fn remove_appliance(&self, name: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM appliances WHERE name = ?1", [name])?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nas2() -> NewAppliance<'static> {
        NewAppliance {
            name: "nas2",
            address: "192.0.2.2",
            fingerprint: "SHA256:00",
            meta_port: 10003,
            data_port: 10002,
        }
    }

    #[test]
    fn add_find_bind_remove() {
        let store = super::super::db::in_memory();
        let id = store.add_appliance(&nas2()).expect("add");
        let a = store.appliance("nas2").expect("query").expect("present");
        assert_eq!(
            (a.id, a.address.as_str(), a.meta_port),
            (id, "192.0.2.2", 10003)
        );
        assert_eq!(a.uuid, None);
        let u = Uuid::new_v4();
        store.set_appliance_uuid(id, u).expect("bind");
        let by_fp = store.appliance_by_fingerprint("SHA256:00").expect("q");
        assert_eq!(by_fp.and_then(|a| a.uuid), Some(u));
        assert!(store.remove_appliance("nas2").expect("rm"));
        assert!(!store.remove_appliance("nas2").expect("rm"));
        assert!(store.appliances().expect("list").is_empty());
    }

    #[test]
    fn names_and_fingerprints_are_unique() {
        let store = super::super::db::in_memory();
        store.add_appliance(&nas2()).expect("add");
        let mut same_fp = nas2();
        same_fp.name = "other";
        assert!(store.add_appliance(&same_fp).is_err());
        let mut same_name = nas2();
        same_name.fingerprint = "SHA256:01";
        assert!(store.add_appliance(&same_name).is_err());
    }
}
