//! Shared harness for ferry's integration tests: loop-backed btrfs pools that clean up
//! after themselves (and after crashed earlier runs), and tree comparison.
#![allow(dead_code)]

pub mod client;
pub mod content;
pub mod daemon;
pub mod ferry;
pub mod netns;
pub mod nodes;
pub mod pair;
pub mod process;
pub mod proxy;
pub mod subvol;
mod tree;

#[allow(unused_imports)] // each test file uses its own subset
pub use tree::{assert_same_tree, tree_difference, tree_digest, Entry, Kind, Tree};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Every pool directory is `<tmp>/ferry-test-<pid>-<random>`; the pid tells whether its
/// owner is still alive.
pub const PREFIX: &str = "ferry-test-";

const DEFAULT_SIZE: u64 = 256 << 20;

/// Where [`TestPool::in_ram`] puts its images.
const RAM_DIR: &str = "/dev/shm";

/// Panics, saying what is missing and how to get it, unless this process can create
/// btrfs pools on loop devices. Never a skip: a test that needs btrfs and did not run
/// must not look like a pass (ferry's CI runs with CI=true and relies on that).
pub fn require_root_and_btrfs() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(msg) = CHECKED.get_or_init(check_environment) {
        panic!("{msg}");
    }
}

fn check_environment() -> Result<(), String> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root: run the tests as root (e.g. `sudo -E cargo test`)".to_string());
    }
    for (tool, package) in [
        ("btrfs", "btrfs-progs"),
        ("mkfs.btrfs", "btrfs-progs"),
        ("losetup", "mount"),
        ("mount", "mount"),
        ("umount", "mount"),
    ] {
        if find_program(tool).is_none() {
            missing.push(format!("`{tool}`: `apt-get install {package}`"));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        missing.push(
            "loop devices: /dev/loop-control is missing (`modprobe loop`; in a container, \
             run it privileged with the host's /dev/loop* devices)"
                .to_string(),
        );
    }
    if !btrfs_in_kernel() {
        // The module may just not be loaded yet; loading it is what mount would do.
        let _ = Command::new("modprobe").arg("btrfs").output();
        if !btrfs_in_kernel() {
            missing.push(
                "btrfs in the kernel: not in /proc/filesystems (`modprobe btrfs`)".to_string(),
            );
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "these tests need real btrfs on loop devices and are never skipped; missing:\n  - {}",
            missing.join("\n  - ")
        ))
    }
}

fn btrfs_in_kernel() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("btrfs"))
        })
        .unwrap_or(false)
}

/// The tool's full path: `PATH` first, then the sbin directories a non-login root
/// shell may lack.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs a tool, panicking with its command line and output when it fails.
pub fn run(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = try_run(program, args).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out).into_owned()
}

fn try_run(program: &str, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, String> {
    let exe = find_program(program).unwrap_or_else(|| PathBuf::from(program));
    let line = format!(
        "{program} {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`{line}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// A btrfs filesystem on a sparse file, mounted through a loop device, gone on drop.
pub struct TestPool {
    /// Where the pool's top-level subvolume is mounted.
    pub mount: PathBuf,
    /// The pool's own temp directory (image and mount point).
    pub dir: PathBuf,
    /// The sparse backing file.
    pub image: PathBuf,
}

impl TestPool {
    pub fn new() -> TestPool {
        TestPool::with_size(DEFAULT_SIZE)
    }

    pub fn with_size(bytes: u64) -> TestPool {
        TestPool::with_size_in(bytes, &std::env::temp_dir())
    }

    /// A pool whose image lives in RAM (`/dev/shm`, a tmpfs): for tests that
    /// run hundreds of replications and must stay fast.
    pub fn in_ram(bytes: u64) -> TestPool {
        TestPool::with_size_in(bytes, Path::new(RAM_DIR))
    }

    fn with_size_in(bytes: u64, parent: &Path) -> TestPool {
        require_root_and_btrfs();
        clean_leftovers();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir_in(parent)
            .expect("create the pool's temp dir")
            .keep();
        // From here on, Drop tears down whatever part of the setup happened.
        let pool = TestPool {
            mount: dir.join("mnt"),
            image: dir.join("pool.img"),
            dir,
        };
        let image = std::fs::File::create(&pool.image).expect("create the pool image");
        image.set_len(bytes).expect("size the sparse pool image");
        drop(image);
        run("mkfs.btrfs", &["-q".as_ref(), pool.image.as_os_str()]);
        std::fs::create_dir(&pool.mount).expect("create the mount point");
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                pool.image.as_os_str(),
                pool.mount.as_os_str(),
            ],
        );
        pool
    }

    /// Creates subvolume `name` at the pool's top level.
    pub fn subvolume(&self, name: &str) -> PathBuf {
        let path = self.mount.join(name);
        run(
            "btrfs",
            &["subvolume".as_ref(), "create".as_ref(), path.as_os_str()],
        );
        path
    }

    /// The loop devices backed by this pool's image (`losetup -j`).
    pub fn loop_devices(&self) -> Vec<String> {
        loop_devices_for(&self.image)
    }

    fn teardown(&self) -> Result<(), String> {
        unmount(&self.mount)?;
        // Autoclear normally detached it with the unmount; this catches the times it did not.
        for dev in loop_devices_for(&self.image) {
            try_run("losetup", &["-d".as_ref(), dev.as_ref()])?;
        }
        remove_if_unmounted(&self.dir)
    }
}

impl Default for TestPool {
    fn default() -> Self {
        TestPool::new()
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        // Runs while unwinding from a failed test too, so it must report, not panic.
        if let Err(e) = self.teardown() {
            eprintln!("TestPool: cleaning up {} failed: {e}", self.dir.display());
        }
    }
}

/// Unmounts `path`, retrying while it is busy (a just-killed btrfs process may still
/// hold it), then lazily as a last resort so the test run is not left with a mount.
fn unmount(path: &Path) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..50 {
        if !mount_points().iter().any(|m| m == path) {
            return Ok(());
        }
        match try_run("umount", &[path.as_os_str()]) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    try_run("umount", &["-l".as_ref(), path.as_os_str()])
        .map(drop)
        .map_err(|e| format!("{last}; then {e}"))
}

fn remove_if_unmounted(dir: &Path) -> Result<(), String> {
    if mount_points().iter().any(|m| m.starts_with(dir)) {
        return Err(format!(
            "{} still has mounts under it; not deleting it",
            dir.display()
        ));
    }
    std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))
}

/// Mount points in this mount namespace, from /proc/self/mountinfo (octal escapes undone).
pub fn mount_points() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .collect()
}

fn unescape_mountinfo(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Loop devices whose backing file is `image`, per `losetup -j`.
pub fn loop_devices_for(image: &Path) -> Vec<String> {
    let out = try_run("losetup", &["-j".as_ref(), image.as_os_str()]).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_once(':').map(|(dev, _)| dev.to_string()))
        .collect()
}

/// Loop devices whose backing file lies under `dir`, from sysfs; unlike `losetup -j`
/// this also finds them when the backing file was already deleted.
pub fn loop_devices_under(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let backing = backing.trim().trim_end_matches(" (deleted)");
            Path::new(backing)
                .starts_with(dir)
                .then(|| format!("/dev/{}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// Once per test process: removes pool dirs of earlier test processes that died
/// without cleaning up. Dirs of live processes (parallel test binaries) are left alone.
fn clean_leftovers() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(clean_leftovers_of_dead_processes);
}

/// The work of [`clean_leftovers`], callable directly by the harness's own tests.
pub fn clean_leftovers_of_dead_processes() {
    let dirs = [std::env::temp_dir(), PathBuf::from(RAM_DIR)];
    let entries = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Err(e) = clean_dead_dir(&entry.path()) {
            eprintln!(
                "TestPool: leftover {} not cleaned: {e}",
                entry.path().display()
            );
        }
    }
}

fn clean_dead_dir(dir: &Path) -> Result<(), String> {
    let mut mounts: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect();
    // Deepest first, so nothing is busy because of a mount on top of it.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in mounts {
        unmount(&m)?;
    }
    for dev in loop_devices_under(dir) {
        try_run("losetup", &["-d".as_ref(), dev.as_ref()])?;
    }
    remove_if_unmounted(dir)
}

/// Binds a listener on `addr`, a port a stopped receiver just let go of,
/// waiting up to 10 s while it is busy: with many tests connecting at once, the
/// kernel may lend the freed port to some connection as its source port for a
/// moment, and then a listener cannot have it.
pub async fn rebind(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            unescape_mountinfo(r"/tmp/a\040b\134c"),
            PathBuf::from(r"/tmp/a b\c")
        );
    }
}
