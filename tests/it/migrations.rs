//! Schema migrations: every way a database can start ends at the same schema, and
//! rows written under an older schema survive the upgrade.

use ferry::store::{migrations, Store};
use rusqlite::Connection;

/// The schema as SQLite records it, minus the order it was created in.
fn schema(path: &std::path::Path) -> Vec<(String, String)> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

#[test]
fn fresh_and_first_migration_databases_end_at_the_current_schema() {
    let all = migrations().expect("migration files");
    let dir = tempfile::tempdir().expect("tmp");

    let fresh_dir = dir.path().join("fresh");
    std::fs::create_dir(&fresh_dir).expect("mkdir");
    let fresh = Store::create(&fresh_dir).expect("create");
    let latest = fresh.schema_version().expect("version");
    assert!(latest >= 1);

    // A database as the first release left it, with a row in it.
    let old_dir = dir.path().join("old");
    std::fs::create_dir(&old_dir).expect("mkdir");
    let old_path = old_dir.join(ferry::store::DB_FILE);
    {
        let mut conn = Connection::open(&old_path).expect("open");
        all.to_version(&mut conn, 1).expect("first migration");
        conn.execute(
            "INSERT INTO appliances (name, address, fingerprint, meta_port, data_port, created_at)
             VALUES ('nas2', '192.0.2.2', 'SHA256:00', 10003, 10002, '2026-01-01T00:00:00.000Z')",
            [],
        )
        .expect("row under the old schema");
    }
    let upgraded = Store::open(&old_dir).expect("open upgrades");
    assert_eq!(upgraded.schema_version().expect("version"), latest);
    assert_eq!(schema(&old_path), schema(fresh.path()));
    let kept = upgraded
        .appliance("nas2")
        .expect("query")
        .expect("row survived");
    assert_eq!(kept.address, "192.0.2.2");
}

#[test]
fn opening_twice_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = Store::create(dir.path()).expect("create");
    let before = schema(first.path());
    drop(first);
    let again = Store::open(dir.path()).expect("open");
    assert_eq!(schema(again.path()), before);
}

#[test]
fn a_database_newer_than_this_binary_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = Store::create(dir.path())
        .expect("create")
        .path()
        .to_path_buf();
    Connection::open(&path)
        .expect("open")
        .pragma_update(None, "user_version", 999)
        .expect("bump");
    let err = Store::open(dir.path()).expect_err("must refuse");
    let text = err.to_string();
    assert!(
        text.contains("was written by a newer ferry (schema 999 > ")
            && text.ends_with("); upgrade ferry to use it"),
        "{text}"
    );
    // Refused before anything was written: the version is still the newer one's.
    let version: i64 = Connection::open(&path)
        .expect("open")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 999);
}
