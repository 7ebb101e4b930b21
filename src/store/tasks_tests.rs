//! Tests of the tasks table: add, show, toggle, edit, delete, and the signature
//! the scheduler polls.

use super::super::db::in_memory;
use super::super::NewAppliance;
use super::*;

pub(crate) fn settings() -> TaskSettings {
    TaskSettings {
        frequency: "300".into(),
        timezone: None,
        meta_port: None,
        data_port: Some(20002),
        keep_source: 3,
        keep_target: 5,
        preserve_source: "none".into(),
        preserve_target: "24h 7d".into(),
        compress: 3,
        compress_auto: true,
        bwlimit: 0,
        skip_unchanged: true,
        hooks: TaskHooks::default(),
        send_compressed: SendCompressed::Auto,
    }
}

pub(crate) fn photos(target_id: i64, settings: &TaskSettings) -> NewTask<'_> {
    NewTask {
        name: "photos",
        share: "/mnt/main/photos",
        target_id,
        pool: "backup",
        snapshot_dir: "/mnt/main/.ferry-snapshots/photos",
        replica_name: None,
        settings,
    }
}

#[test]
fn add_show_toggle_delete() {
    let store = in_memory();
    let target = store
        .add_appliance(&NewAppliance {
            name: "nas2",
            address: "192.0.2.2",
            fingerprint: "SHA256:00",
            meta_port: 10003,
            data_port: 10002,
        })
        .expect("appliance");
    let settings = settings();
    store.add_task(&photos(target, &settings)).expect("add");
    let t = store.task("photos").expect("q").expect("present");
    assert_eq!(t.settings(), settings);
    assert_eq!(t.target, "nas2");
    assert_eq!(t.share_name(), "photos");
    assert_eq!((t.meta_port, t.data_port), (None, Some(20002)));
    assert!(t.enabled);
    let before = store.tasks_signature().expect("signature");
    assert!(store.set_task_enabled("photos", false).expect("disable"));
    assert_ne!(store.tasks_signature().expect("signature"), before);
    assert!(!store.set_task_enabled("photos", false).expect("again"));
    // An edit changes the signature the scheduler polls, even within the
    // same millisecond as the last change.
    let before = store.tasks_signature().expect("signature");
    let mut edited = settings.clone();
    edited.keep_target = 9;
    edited.hooks.on_failure = Some("logger failed".into());
    assert!(store.set_task_settings("photos", &edited).expect("set"));
    assert_ne!(store.tasks_signature().expect("signature"), before);
    assert_eq!(
        store
            .task("photos")
            .expect("q")
            .expect("present")
            .settings(),
        edited
    );
    assert!(!store
        .set_task_settings("nope", &edited)
        .expect("no such task"));
    assert_eq!(store.tasks_targeting(target).expect("q"), vec!["photos"]);
    // The appliance cannot go while a task targets it.
    assert!(store.remove_appliance("nas2").is_err());
    assert!(store.delete_task("photos").expect("delete"));
    assert!(store.remove_appliance("nas2").expect("now it can"));
}
