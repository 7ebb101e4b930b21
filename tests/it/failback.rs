//! Disaster recovery with the real binary on two appliances, both receivers
//! running: nas2 lists and restores nas1's replica as a live share, fails
//! back to nas1 incrementally, and nas1 resumes the original direction
//! incrementally too.

use std::path::{Path, PathBuf};

use crate::common::content::incompressible;
use crate::common::daemon::Daemon;
use crate::common::ferry::Node;
use crate::common::pair::{names_in, Pair};
use crate::common::{assert_same_tree, tree_digest};

/// The share's size: the failback's stream must stay under a tenth of it.
const SHARE_BYTES: usize = 32 << 20;

/// nas1 sent `photos` to nas2 twice; nas1 now also runs a receiver, exposes
/// its share's filesystem as pool `home`, and nas2 knows where it listens.
pub struct Failover {
    pub pair: Pair,
    pub nas1_receiver: Option<Daemon>,
    pub nas2_uuid: String,
}

impl Failover {
    pub async fn new() -> Failover {
        let pair = Pair::new(&[]).await;
        incompressible(&pair.share.join("big.bin"), SHARE_BYTES);
        pair.run_ok().await;
        std::fs::write(pair.share.join("b.txt"), b"beta\n").expect("write");
        pair.run_ok().await;
        let nas1_receiver = Daemon::start(&pair.nas1.state, |_| {}).await;
        pair.nas1
            .ok(&["pool", "add", "home", &pair.src.mount.to_string_lossy()]);
        pair.nas2.ok(&[
            "appliance",
            "set",
            "nas1",
            "--meta-port",
            &nas1_receiver.meta.port().to_string(),
            "--data-port",
            &nas1_receiver.data.port().to_string(),
        ]);
        let nas2_uuid = pair.nas2.json(&["id", "--json"])["uuid"]
            .as_str()
            .expect("uuid")
            .to_string();
        Failover {
            pair,
            nas1_receiver: Some(nas1_receiver),
            nas2_uuid,
        }
    }

    /// Where nas2 restores the replica as its live share.
    pub fn live(&self) -> PathBuf {
        self.pair.dst.mount.join("photos")
    }

    /// nas2 restores nas1's newest replica as its live share, and adds the
    /// task that sends it back to nas1's pool `home`.
    pub fn fail_over(&self) {
        let live = self.live();
        let live_s = live.to_string_lossy();
        let out = self
            .pair
            .nas2
            .ok(&["replica", "restore", "nas1", "photos", "--to", &live_s]);
        assert!(
            out.contains(&format!("restored {live_s} from replica")),
            "{out}"
        );
        sends_back(&self.pair.nas2, &live_s);
    }

    /// `ferry task run photos` on nas2; its newest send row.
    pub async fn fail_back(&self) -> serde_json::Value {
        let out = self.pair.nas2.run_async(&["task", "run", "photos"]).await;
        assert!(
            out.status.success(),
            "failback run: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.pair
            .nas2
            .json(&["history", "send", "--json", "--limit", "1"])[0]
            .clone()
    }

    /// nas1's replicas of nas2's `photos`.
    pub fn back_dir(&self) -> PathBuf {
        self.pair
            .src
            .mount
            .join(".ferry")
            .join(&self.nas2_uuid)
            .join("photos")
    }

    /// The `.failback-*` names in nas1's replica directory once at most
    /// `left` remain (or 20 s passed): the receiver retires its base after
    /// it answered `received`, so after `task run` returned.
    pub async fn bases_after_retirement(&self, left: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let bases: Vec<String> = names_in(&self.back_dir())
                .into_iter()
                .filter(|n| n.starts_with(".failback-"))
                .collect();
            if bases.len() <= left || std::time::Instant::now() > deadline {
                return bases;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(d) = self.nas1_receiver.take() {
            d.stop().await;
        }
    }
}

fn warnings(row: &serde_json::Value) -> String {
    row["warnings"].to_string()
}

/// Pins: after a failover both directions were full sends, and the resumed
/// original task re-sent everything from a parent of another lineage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_over_then_back_incrementally_both_ways() {
    let f = Failover::new().await;
    let pair = &f.pair;

    // nas2 lists nas1's line, newest first, with the newest marked.
    let listed = pair.nas2.json(&["replica", "list", "--json"]);
    let rows = listed.as_array().expect("list");
    assert_eq!(rows.len(), 2, "{listed}");
    let replicas = pair.replicas();
    assert_eq!(rows[0]["snapshot"], replicas[1].as_str());
    assert_eq!(rows[0]["latest"], true);
    assert_eq!(rows[1]["latest"], false);
    assert_eq!(rows[0]["source"], "nas1");
    assert_eq!(rows[0]["source_uuid"], pair.peer.uuid.to_string());
    assert_eq!(rows[0]["share"], "photos");
    assert_eq!(rows[0]["pool"], "backup");
    let path = rows[0]["path"].as_str().expect("path");
    assert!(
        Path::new(path).is_absolute() && Path::new(path).is_dir(),
        "{path}"
    );
    for key in ["received_uuid", "received_at"] {
        assert!(rows[0][key].is_string(), "{key}: {listed}");
    }

    f.fail_over();
    let restores = pair.nas2.json(&["history", "restore", "--json"]);
    assert_eq!(restores[0]["path"], f.live().to_string_lossy().as_ref());
    assert_eq!(restores[0]["snapshot"], replicas[1].as_str());
    incompressible(&f.live().join("changed-on-nas2.bin"), 2 << 20);
    let original = tree_digest(&pair.share);

    let row = f.fail_back().await;
    assert_eq!(row["status"], "succeeded", "{row}");
    assert_eq!(row["kind"], "incremental", "{row}");
    assert_eq!(row["parent"], replicas[1].as_str(), "{row}");
    let stream = row["stream_bytes"].as_u64().expect("bytes");
    assert!(
        stream < SHARE_BYTES as u64 / 10,
        "the failback streamed {stream} bytes of a {SHARE_BYTES}-byte share"
    );
    let w = warnings(&row);
    assert!(
        w.contains("failback base") && w.contains("own snapshot") && w.contains("received from"),
        "the base and why it qualifies: {w}"
    );
    // The data lands on nas1 as a replica line of nas2's, equal to its live share.
    let retired = f.bases_after_retirement(0).await;
    assert!(retired.is_empty(), "base retired: {retired:?}");
    let theirs = f.back_dir().join("latest");
    assert_same_tree(&f.live(), &theirs);
    assert_eq!(tree_digest(&pair.share), original, "nas1's share untouched");
    let listed = pair
        .nas1
        .json(&["replica", "list", "--source", "nas2", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // nas1 is back: its share comes from that replica, and the original
    // direction goes on incrementally.
    std::fs::rename(&pair.share, pair.src.mount.join("photos.old")).expect("set aside");
    let share_s = pair.share.to_string_lossy().into_owned();
    pair.nas1
        .ok(&["replica", "restore", "nas2", "photos", "--to", &share_s]);
    assert_same_tree(&pair.share, &f.live());
    pair.run_ok().await;
    let rows = pair.send_rows();
    assert_eq!(rows[0]["kind"], "incremental", "{}", rows[0]);
    assert_eq!(rows[0]["parent"], replicas[1].as_str());
    let stream = rows[0]["stream_bytes"].as_u64().expect("bytes");
    assert!(stream < SHARE_BYTES as u64 / 10, "{stream}");
    assert_same_tree(&pair.share, &pair.latest());
    f.stop().await;
}

/// Pins: a failback whose base the original appliance deleted falls back to
/// a full send and says so, rather than failing or guessing another parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failback_whose_base_is_gone_sends_in_full_and_says_so() {
    let f = Failover::new().await;
    f.fail_over();
    // nas1 lost every snapshot its line on nas2 was received from.
    let snapshots = f.pair.src.mount.join(".ferry-snapshots/photos");
    for name in names_in(&snapshots) {
        let path = snapshots.join(name);
        crate::common::run(
            "btrfs",
            &["subvolume".as_ref(), "delete".as_ref(), path.as_os_str()],
        );
    }
    std::fs::write(f.live().join("c.txt"), b"gamma\n").expect("write");
    let row = f.fail_back().await;
    assert_eq!(row["status"], "succeeded", "{row}");
    assert_eq!(row["kind"], "full", "{row}");
    let w = warnings(&row);
    assert!(
        w.contains("offers none") && w.contains("sending in full") && w.contains("gone"),
        "{w}"
    );
    assert_same_tree(&f.live(), &f.back_dir().join("latest"));
    f.stop().await;
}

/// Pins: an appliance running the predecessor release (no feature list)
/// gets a full failback, without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_peer_gets_a_full_failback_without_an_error() {
    use ferry::identity::{self, StaticPeers};
    let pair = Pair::new(&[]).await;
    pair.run_ok().await;
    std::fs::write(pair.share.join("b.txt"), b"beta\n").expect("write");
    pair.run_ok().await;
    // nas1 runs the predecessor: its recorded answers on ports of its own.
    let meta_l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let data_l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    pair.nas2.ok(&[
        "appliance",
        "set",
        "nas1",
        "--meta-port",
        &meta_l.local_addr().expect("addr").port().to_string(),
        "--data-port",
        &data_l.local_addr().expect("addr").port().to_string(),
    ]);
    let nas1 = identity::load(&pair.nas1.state).expect("nas1 identity");
    let trusted: StaticPeers = [identity::load(&pair.nas2.state).expect("nas2").fingerprint]
        .into_iter()
        .collect();
    let tls = tokio_rustls::TlsAcceptor::from(
        identity::server_config(&nas1, std::sync::Arc::new(trusted)).expect("config"),
    );
    let old = tokio::spawn(crate::old_peers::old_receiver(
        meta_l,
        data_l,
        tls,
        pair.peer.uuid,
        None,
    ));
    let live = pair.dst.mount.join("photos");
    let live_s = live.to_string_lossy();
    pair.nas2
        .ok(&["replica", "restore", "nas1", "photos", "--to", &live_s]);
    sends_back(&pair.nas2, &live_s);
    let out = pair.nas2.run_async(&["task", "run", "photos"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    old.await.expect("join").expect("the old receiver's script");
    let row = &pair
        .nas2
        .json(&["history", "send", "--json", "--limit", "1"])[0];
    assert_eq!(
        (&row["status"], &row["kind"]),
        (&"succeeded".into(), &"full".into()),
        "{row}"
    );
    assert!(!warnings(row).contains("failback"), "{row}");
}

/// Pins: a failback base is ferry's own by record; a subvolume of a user's
/// under its name is passed by and left alone, before and after the receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_subvolume_under_a_bases_name_is_left_alone() {
    let f = Failover::new().await;
    f.fail_over();
    let listed = f.pair.nas2.json(&["replica", "list", "--json"]);
    let origin: uuid::Uuid = listed[0]["received_uuid"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("uuid");
    std::fs::create_dir_all(f.back_dir()).expect("mkdir");
    let planted = f.back_dir().join(format!(".failback-{}", origin.simple()));
    crate::common::run(
        "btrfs",
        &["subvolume".as_ref(), "create".as_ref(), planted.as_os_str()],
    );
    std::fs::write(planted.join("mine.txt"), b"the user's\n").expect("write");
    let row = f.fail_back().await;
    assert_eq!(
        (&row["status"], &row["kind"]),
        (&"succeeded".into(), &"incremental".into()),
        "{row}"
    );
    assert_eq!(
        std::fs::read(planted.join("mine.txt")).expect("kept"),
        b"the user's\n"
    );
    let bases = f.bases_after_retirement(1).await;
    assert_eq!(
        bases,
        [format!(".failback-{}", origin.simple())],
        "ours retired, the user's kept"
    );
    assert_same_tree(&f.live(), &f.back_dir().join("latest"));
    f.stop().await;
}

/// nas2's task sending the live share `live` back to nas1's pool `home`.
fn sends_back(nas2: &Node, live: &str) {
    nas2.ok(&[
        "task",
        "add",
        "photos",
        "--share",
        live,
        "--target",
        "nas1",
        "--pool",
        "home",
        "--frequency",
        "5m",
    ]);
}
