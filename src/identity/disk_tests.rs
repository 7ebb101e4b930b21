use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn uuid() -> Uuid {
    Uuid::new_v4()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn create_writes_key_0600_and_cert() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(!exists(dir.path()));
    let id = create(dir.path(), "nas1", uuid()).expect("create");
    assert!(exists(dir.path()));
    assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
    assert!(dir.path().join(CERT_FILE).is_file());
    assert_eq!(id.fingerprint, Fingerprint::of_der(&id.cert));
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, [CERT_FILE, KEY_FILE], "no temporary files left");
    let cert_pem = fs::read_to_string(dir.path().join(CERT_FILE)).expect("read cert");
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let parsed = ParsedCertificate::try_from(&id.cert);
    assert!(parsed.is_ok(), "certificate parses as X.509");
}

#[test]
fn create_makes_missing_state_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("a/b");
    create(&state, "nas1", uuid()).expect("create");
    assert!(state.join(KEY_FILE).is_file());
    assert_eq!(mode(&state), 0o700);
}

#[test]
fn second_create_refuses_and_leaves_files_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    create(dir.path(), "nas1", uuid()).expect("create");
    let key = fs::read(dir.path().join(KEY_FILE)).expect("key");
    let cert = fs::read(dir.path().join(CERT_FILE)).expect("cert");

    let err = create(dir.path(), "nas1", uuid()).expect_err("second create");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(dir.path().join(KEY_FILE)).expect("key"), key);
    assert_eq!(fs::read(dir.path().join(CERT_FILE)).expect("cert"), cert);

    // Either file alone is enough to refuse.
    fs::remove_file(dir.path().join(KEY_FILE)).expect("rm key");
    let err = create(dir.path(), "nas1", uuid()).expect_err("cert only");
    assert!(matches!(&err, Error::AlreadyExists { path } if path.ends_with(CERT_FILE)));
    assert!(!dir.path().join(KEY_FILE).exists());
    assert_eq!(fs::read(dir.path().join(CERT_FILE)).expect("cert"), cert);
}

#[test]
fn load_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let created = create(dir.path(), "nas1", uuid()).expect("create");
    let loaded = load(dir.path()).expect("load");
    assert_eq!(loaded.fingerprint, created.fingerprint);
    assert_eq!(loaded.cert, created.cert);
    assert_eq!(loaded.key.secret_der(), created.key.secret_der());
    assert!(
        !format!("{loaded:?}").contains("key"),
        "Debug hides the key"
    );
}

#[test]
fn load_missing_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(dir.path()).expect_err("empty dir");
    assert!(
        matches!(&err, Error::Missing { path } if path.ends_with(KEY_FILE)),
        "{err}"
    );
    assert!(err.to_string().contains("ferry init"), "{err}");

    create(dir.path(), "nas1", uuid()).expect("create");
    fs::remove_file(dir.path().join(CERT_FILE)).expect("rm cert");
    let err = load(dir.path()).expect_err("no cert");
    assert!(
        matches!(&err, Error::Missing { path } if path.ends_with(CERT_FILE)),
        "{err}"
    );
}

fn corrupt_err(file: &str, contents: &[u8]) -> Error {
    let dir = tempfile::tempdir().expect("tempdir");
    create(dir.path(), "nas1", uuid()).expect("create");
    // Overwrite in place so the key keeps its 0600 mode.
    fs::write(dir.path().join(file), contents).expect("corrupt");
    let err = load(dir.path()).expect_err("corrupt file loads");
    match &err {
        Error::Corrupt { path, .. } => assert!(path.ends_with(file), "{err}"),
        other => panic!("expected Corrupt for {file}, got {other}"),
    }
    err
}

#[test]
fn load_corrupt_files_give_clear_errors() {
    let err = corrupt_err(CERT_FILE, b"hello");
    assert!(
        err.to_string().contains("not a valid PEM certificate"),
        "{err}"
    );

    let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let err = corrupt_err(CERT_FILE, junk);
    assert!(
        err.to_string().contains("not a valid X.509 certificate"),
        "{err}"
    );

    let err = corrupt_err(KEY_FILE, b"");
    assert!(
        err.to_string().contains("not a valid PEM private key"),
        "{err}"
    );

    let junk = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let err = corrupt_err(KEY_FILE, junk);
    assert!(err.to_string().contains("not a valid private key"), "{err}");
}

#[test]
fn load_refuses_key_of_another_identity() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    create(a.path(), "a", uuid()).expect("create a");
    create(b.path(), "b", uuid()).expect("create b");
    let other_key = fs::read(a.path().join(KEY_FILE)).expect("key a");
    fs::write(b.path().join(KEY_FILE), other_key).expect("swap key");
    let err = load(b.path()).expect_err("mismatched pair");
    assert!(
        err.to_string().contains("private key for the certificate"),
        "{err}"
    );
}

#[test]
fn load_refuses_key_readable_by_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    create(dir.path(), "nas1", uuid()).expect("create");
    let key = dir.path().join(KEY_FILE);
    for bad in [0o644, 0o640, 0o604, 0o620] {
        fs::set_permissions(&key, fs::Permissions::from_mode(bad)).expect("chmod");
        let err = load(dir.path()).expect_err("loose key mode");
        assert!(
            matches!(err, Error::KeyPermissions { mode, .. } if mode == bad),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).expect("chmod");
    load(dir.path()).expect("0400 is fine");
}
