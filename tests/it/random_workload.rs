//! A randomized workload, replicated incrementally round after round and
//! compared after each: sparse files, hole punches, renames, deletes, hard
//! links, xattrs, nested subvolumes, and bases edited after they were
//! confirmed on either side. Pools in RAM, the receiver and the runs in
//! process, a fixed seed (`FERRY_SEED` picks another) named on any failure.

use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry::btrfs;
use ferry::sender::{self, Outcome, RunOptions};
use tokio_util::sync::CancellationToken;

use crate::common::daemon::Daemon;
use crate::common::ferry::task_add;
use crate::common::nodes::Nodes;
use crate::common::subvol::edit_readonly;
use crate::common::{tree_difference, tree_digest};

const ROUNDS: u32 = 200;
const DEFAULT_SEED: u64 = 0x00f3_e77e_2026_1010;

/// The changes the workload must have made at least once.
const KINDS: [&str; 8] = [
    "sparse",
    "punch",
    "rename",
    "delete",
    "hard link",
    "xattr",
    "nested subvolume",
    "rm -r",
];

/// The workload's own view of the share: what it may act on next.
struct Share {
    root: PathBuf,
    rng: fastrand::Rng,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    nested: Vec<PathBuf>,
    serial: u32,
}

impl Share {
    fn new(root: PathBuf, seed: u64) -> Share {
        Share {
            root,
            rng: fastrand::Rng::with_seed(seed),
            files: Vec::new(),
            dirs: vec![PathBuf::new()],
            nested: Vec::new(),
            serial: 0,
        }
    }

    fn fresh(&mut self, stem: &str) -> PathBuf {
        self.serial += 1;
        let dir = self.dirs[self.rng.usize(..self.dirs.len())].clone();
        dir.join(format!("{stem}-{}", self.serial))
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        // Half of the data compresses, half does not.
        if self.rng.bool() {
            (0..len).map(|i| b"ferry replicates "[i % 17]).collect()
        } else {
            (0..len).map(|_| self.rng.u8(..)).collect()
        }
    }

    fn pick_file(&mut self) -> Option<PathBuf> {
        (!self.files.is_empty()).then(|| self.files[self.rng.usize(..self.files.len())].clone())
    }

    /// One random change; returns what it did, for the failure message.
    fn change(&mut self) -> String {
        let root = self.root.clone();
        let roll = self.rng.u32(..100);
        match (roll, self.pick_file()) {
            (0..=19, _) | (_, None) => {
                let rel = self.fresh("file");
                let len = self.rng.usize(..48 << 10);
                let data = self.bytes(len);
                std::fs::write(root.join(&rel), data).expect("write");
                self.files.push(rel.clone());
                format!("write {}", rel.display())
            }
            (20..=29, Some(rel)) => {
                let len = self.rng.usize(1..8 << 10);
                let data = self.bytes(len);
                let at = self.rng.u64(..64 << 10);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(root.join(&rel))
                    .expect("open");
                f.write_all_at(&data, at).expect("pwrite");
                format!("overwrite {} at {at}", rel.display())
            }
            (30..=35, _) => {
                let rel = self.fresh("sparse");
                let f = std::fs::File::create(root.join(&rel)).expect("create");
                f.set_len(self.rng.u64(1 << 20..4 << 20)).expect("set_len");
                for _ in 0..self.rng.u32(1..4) {
                    let len = self.rng.usize(1..16 << 10);
                    let data = self.bytes(len);
                    f.write_all_at(&data, self.rng.u64(..1 << 20))
                        .expect("pwrite");
                }
                self.files.push(rel.clone());
                format!("sparse {}", rel.display())
            }
            (36..=43, Some(rel)) => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(root.join(&rel))
                    .expect("open");
                let len = f.metadata().expect("stat").len().max(1);
                let (at, span) = (self.rng.u64(..len), self.rng.u64(1..64 << 10));
                let flags = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                    | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
                let (at, span) = (
                    i64::try_from(at).expect("off"),
                    i64::try_from(span).expect("len"),
                );
                nix::fcntl::fallocate(f.as_fd(), flags, at, span).expect("punch a hole");
                format!("punch {} at {at} for {span}", rel.display())
            }
            (44..=48, Some(rel)) => {
                let len = self.rng.u64(..128 << 10);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(root.join(&rel))
                    .expect("open");
                f.set_len(len).expect("truncate");
                format!("truncate {} to {len}", rel.display())
            }
            (49..=56, Some(rel)) => {
                let to = self.fresh("moved");
                std::fs::rename(root.join(&rel), root.join(&to)).expect("rename");
                self.files.retain(|f| *f != rel);
                self.files.push(to.clone());
                format!("rename {} to {}", rel.display(), to.display())
            }
            (57..=63, Some(rel)) => {
                std::fs::remove_file(root.join(&rel)).expect("rm");
                self.files.retain(|f| *f != rel);
                format!("delete {}", rel.display())
            }
            (64..=69, Some(rel)) => {
                let to = self.fresh("link");
                std::fs::hard_link(root.join(&rel), root.join(&to)).expect("link");
                self.files.push(to.clone());
                format!("hard link {} to {}", to.display(), rel.display())
            }
            (70..=75, Some(rel)) => {
                let len = self.rng.usize(..200);
                let value = self.bytes(len);
                let name = format!("user.k{}", self.rng.u8(..4));
                if self.rng.u8(..4) == 0 {
                    let _ = xattr::remove(root.join(&rel), &name);
                    format!("remove xattr {name} of {}", rel.display())
                } else {
                    xattr::set(root.join(&rel), &name, &value).expect("setxattr");
                    format!("xattr {name} on {}", rel.display())
                }
            }
            (76..=79, Some(rel)) => {
                let mode = [0o600, 0o644, 0o755, 0o640][self.rng.usize(..4)];
                std::fs::set_permissions(root.join(&rel), std::fs::Permissions::from_mode(mode))
                    .expect("chmod");
                format!("chmod {mode:o} {}", rel.display())
            }
            (80..=84, _) => {
                let rel = self.fresh("dir");
                std::fs::create_dir(root.join(&rel)).expect("mkdir");
                self.dirs.push(rel.clone());
                format!("mkdir {}", rel.display())
            }
            (85..=88, Some(rel)) => {
                let to = self.fresh("symlink");
                std::os::unix::fs::symlink(&rel, root.join(&to)).expect("symlink");
                format!("symlink {} -> {}", to.display(), rel.display())
            }
            (89..=91, _) if self.dirs.len() > 1 => {
                // A whole directory goes, and what the workload knew under it.
                let i = self.rng.usize(1..self.dirs.len());
                let dir = self.dirs[i].clone();
                std::fs::remove_dir_all(root.join(&dir)).expect("rm -r");
                self.dirs.retain(|d| !d.starts_with(&dir));
                self.files.retain(|f| !f.starts_with(&dir));
                self.nested.retain(|n| !n.starts_with(&dir));
                format!("rm -r {}", dir.display())
            }
            (92..=94, _) => {
                // A nested subvolume: btrfs send leaves it out, so do we.
                let rel = self.fresh("nested");
                crate::common::run(
                    "btrfs",
                    &[
                        "subvolume".as_ref(),
                        "create".as_ref(),
                        root.join(&rel).as_os_str(),
                    ],
                );
                std::fs::write(root.join(&rel).join("inside"), b"not replicated").expect("write");
                self.nested.push(rel.clone());
                format!("nested subvolume {}", rel.display())
            }
            (95..=96, _) if !self.nested.is_empty() => {
                let rel = self.nested.remove(self.rng.usize(..self.nested.len()));
                crate::common::run(
                    "btrfs",
                    &[
                        "subvolume".as_ref(),
                        "delete".as_ref(),
                        root.join(&rel).as_os_str(),
                    ],
                );
                format!("delete nested subvolume {}", rel.display())
            }
            _ => {
                let rel = self.fresh("small");
                std::fs::write(root.join(&rel), b"x").expect("write");
                self.files.push(rel.clone());
                format!("write {}", rel.display())
            }
        }
    }
}

/// A read-only subvolume in `dir`, picked by `rng`; `None` when there is none.
fn pick_subvolume(rng: &mut fastrand::Rng, dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .collect();
    found.sort();
    (!found.is_empty()).then(|| found.swap_remove(rng.usize(..found.len())))
}

/// An edit of a base after it was confirmed: a file of it deleted, or one
/// added, the read-only flag flipped around it with the plain ioctl.
fn edit_base(rng: &mut fastrand::Rng, base: &Path) -> String {
    let victim = std::fs::read_dir(base)
        .expect("read base")
        .flatten()
        .find(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path());
    let add = rng.bool();
    edit_readonly(base, |dir| match (&victim, add) {
        (Some(v), false) => std::fs::remove_file(v).expect("rm in base"),
        _ => std::fs::write(dir.join("edited-by-hand"), b"later").expect("write in base"),
    });
    format!("edited base {}", base.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_workload_replicates_exactly_round_after_round() {
    let seed = std::env::var("FERRY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let started = Instant::now();
    let nodes = Nodes::in_ram(1 << 30);
    let receiver = Daemon::start(&nodes.nas2.state, |_| {}).await;
    nodes.nas1_sends_to(&receiver);
    let share_s = nodes.share.to_str().expect("utf8");
    let extra = [
        "--keep-source",
        "3",
        "--keep-target",
        "4",
        "--preserve-target",
        "none",
        "--nested",
        "skip",
    ];
    nodes.nas1.ok(&task_add("photos", share_s, "1h", &extra));
    let snapshots = nodes.src.mount.join(".ferry-snapshots/photos");
    let replicas = nodes.replica_dir();
    let mut share = Share::new(nodes.share.clone(), seed);
    let mut edits = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut journal: Vec<String> = Vec::new();
    // What the workload got to do: it must have exercised every kind.
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    for round in 1..=ROUNDS {
        let mut done: Vec<String> = (0..share.rng.u32(1..5)).map(|_| share.change()).collect();
        for d in &done {
            for kind in KINDS {
                if d.starts_with(kind) {
                    *seen.entry(kind).or_default() += 1;
                }
            }
        }
        // The edits that made a confirmed base unfit as a parent, now and then.
        let side = match edits.u32(..100) {
            0..=2 => Some(("edited snapshot", &snapshots)),
            3..=5 => Some(("edited replica", &replicas)),
            _ => None,
        };
        if let Some((kind, dir)) = side {
            if let Some(base) = pick_subvolume(&mut edits, dir) {
                done.push(edit_base(&mut edits, &base));
                *seen.entry(kind).or_default() += 1;
            }
        }
        journal.push(format!("round {round}: {}", done.join("; ")));
        let context = |journal: &[String]| {
            format!(
                "seed {seed} (rerun with FERRY_SEED={seed}), round {round}; the last rounds:\n{}",
                journal[journal.len().saturating_sub(6)..].join("\n")
            )
        };
        let outcome = sender::run_task(
            &nodes.nas1.state,
            "photos",
            None,
            CancellationToken::new(),
            RunOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}; {}", context(&journal)));
        if let Outcome::Sent(sent) = &outcome {
            if sent.warnings.iter().any(|w| w.starts_with("base ")) {
                *seen.entry("base skipped").or_default() += 1;
            }
            journal.push(format!(
                "  sent {} ({} from {:?}), {} bytes",
                sent.snapshot, sent.kind, sent.parent, sent.stream_bytes
            ));
        }
        let latest = replicas.join("latest");
        if let Some(diff) = tree_difference(&tree_digest(&nodes.share), &tree_digest(&latest)) {
            panic!("the replica differs: {diff}; {}", context(&journal));
        }
    }
    for kind in KINDS
        .into_iter()
        .chain(["edited snapshot", "edited replica", "base skipped"])
    {
        assert!(
            seen.contains_key(kind),
            "seed {seed} never did {kind:?}: {seen:?}"
        );
    }
    // Every run found its way: the replica line is whole and unchanged.
    let held = btrfs::list(&replicas).await.expect("list replicas");
    assert!(!held.is_empty() && held.len() <= 4, "{held:?}");
    receiver.stop().await;
    eprintln!(
        "random workload: {ROUNDS} rounds with seed {seed} in {:?}: {seen:?}",
        started.elapsed()
    );
}
