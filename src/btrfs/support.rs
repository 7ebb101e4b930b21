//! What this machine's btrfs can do with send streams, probed from the kernel
//! and btrfs-progs, and the version a stream declares in its header.

use std::path::Path;
use std::process::{Command, Stdio};

use super::BTRFS;

/// Where the kernel says which send stream versions it emits (Linux 5.19+).
const KERNEL_VERSION_FILE: &str = "/sys/fs/btrfs/features/send_stream_version";

/// What a send stream starts with: this magic, then the version (u32 LE).
const STREAM_MAGIC: &[u8; 13] = b"btrfs-stream\0";

/// What this machine supports, as probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSupport {
    /// The newest send stream version the kernel emits (1 when it does not say).
    pub kernel: u32,
    /// btrfs-progs takes `send --proto N`. It learned that and receiving
    /// version 2 streams in the same release (6.0).
    pub progs_proto: bool,
    /// btrfs-progs takes `send --compressed-data`.
    pub progs_compressed_data: bool,
    /// The kernel has `BTRFS_IOC_SET_RECEIVED_SUBVOL` as it is today (Linux
    /// 3.12 and later), which a failback base needs.
    pub set_received: bool,
}

impl SendSupport {
    /// Whether this machine can send and receive version 2 streams.
    pub fn stream_v2(&self) -> bool {
        self.kernel >= 2 && self.progs_proto
    }
}

/// Probes the kernel ([`KERNEL_VERSION_FILE`]) and btrfs-progs (`btrfs send
/// --help`). Blocking: it runs a process. Anything unreadable counts as
/// unsupported, which only means version 1 streams.
pub fn send_support() -> SendSupport {
    let kernel = kernel_version(Path::new(KERNEL_VERSION_FILE));
    let help = Command::new(BTRFS)
        .args(["send", "--help"])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let (progs_proto, progs_compressed_data) = progs_flags(&help);
    SendSupport {
        kernel,
        progs_proto,
        progs_compressed_data,
        set_received: kernel_at_least(&read_release(), (3, 12)),
    }
}

/// The running kernel's release (`6.1.0-18-amd64`), empty when unreadable.
fn read_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()
}

/// Whether the kernel release `release` is `at_least` (major, minor); an
/// unreadable release is not.
fn kernel_at_least(release: &str, at_least: (u32, u32)) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= at_least,
        _ => false,
    }
}

fn kernel_version(file: &Path) -> u32 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

/// Whether `btrfs send --help` lists `--proto` and `--compressed-data`.
fn progs_flags(help: &str) -> (bool, bool) {
    let lists = |flag: &str| {
        help.lines()
            .any(|l| l.split_whitespace().next() == Some(flag))
    };
    (lists("--proto"), lists("--compressed-data"))
}

/// The version a send stream declares, from its first 17 bytes; `None` when
/// `head` is shorter or is not a send stream.
pub fn stream_version(head: &[u8]) -> Option<u32> {
    let rest = head.strip_prefix(STREAM_MAGIC.as_slice())?;
    let bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// How many bytes [`stream_version`] needs.
pub const STREAM_HEADER_LEN: usize = STREAM_MAGIC.len() + 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.1.0-18-amd64\n", (3, 12)));
        assert!(kernel_at_least("3.12", (3, 12)));
        assert!(!kernel_at_least("3.11.9", (3, 12)));
        assert!(!kernel_at_least("", (3, 12)));
    }

    #[test]
    fn reads_the_version_a_stream_declares() {
        let mut head = b"btrfs-stream\0".to_vec();
        head.extend_from_slice(&2u32.to_le_bytes());
        assert_eq!(head.len(), STREAM_HEADER_LEN);
        assert_eq!(stream_version(&head), Some(2));
        head.extend_from_slice(b"more");
        assert_eq!(stream_version(&head), Some(2));
        assert_eq!(stream_version(&head[..16]), None);
        assert_eq!(stream_version(b"GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn flags_are_read_from_the_help_text_of_btrfs_progs() {
        // Captured from btrfs-progs v6.2 and v5.16.
        let v62 = "    -p <parent>               send an incremental stream from <parent> to <subvol>\n\
                   \x20   --proto N                 use protocol version N, or 0 to use the highest\n\
                   \x20   --compressed-data         send data that is compressed on the filesystem\n";
        let v516 = "    -p <parent>               send an incremental stream from <parent> to <subvol>\n\
                    \x20   --no-data                 send in NO_FILE_DATA mode, Note: the output stream\n";
        assert_eq!(progs_flags(v62), (true, true));
        assert_eq!(progs_flags(v516), (false, false));
        // A flag named in another flag's description does not count.
        assert_eq!(progs_flags("  -x   like --proto but not\n"), (false, false));
    }

    #[test]
    fn an_absent_or_odd_kernel_file_means_version_1() {
        assert_eq!(kernel_version(Path::new("/nonexistent/ferry")), 1);
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("v");
        std::fs::write(&file, "2\n").expect("write");
        assert_eq!(kernel_version(&file), 2);
        std::fs::write(&file, "two").expect("write");
        assert_eq!(kernel_version(&file), 1);
    }
}
