//! What a replica must preserve, made comparable: every path with its type, contents,
//! mode, owner, symlink target, xattrs, hard-link group and sparseness. Nested
//! subvolumes are left out, as btrfs send leaves them out.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        len: u64,
        blake3: String,
        /// The file has a hole before its last block. (The last block is left
        /// out: btrfs receive zeroes a hole that runs to the end of the file
        /// inside its last block, where the source may have freed the block;
        /// the contents are the same.)
        sparse: bool,
    },
    Symlink(PathBuf),
    Fifo,
    Socket,
    CharDevice(u64),
    BlockDevice(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
    /// For a file with other links in the tree: the first path (in sort order) of its
    /// inode, so two trees agree when they link the same paths together.
    pub linked_with: Option<PathBuf>,
}

/// Relative path (the root is `.`) to entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<PathBuf, Entry>);

/// Reads the tree under `root`, not following symlinks.
pub fn tree_digest(root: &Path) -> Tree {
    let mut entries = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    walk(root, Path::new("."), &mut entries, &mut inodes);
    for paths in inodes.values().filter(|p| p.len() > 1) {
        let first = paths.iter().min().cloned();
        for p in paths {
            if let Some(e) = entries.get_mut(p) {
                e.linked_with = first.clone();
            }
        }
    }
    Tree(entries)
}

fn walk(
    root: &Path,
    rel: &Path,
    entries: &mut BTreeMap<PathBuf, Entry>,
    inodes: &mut HashMap<(u64, u64), Vec<PathBuf>>,
) {
    let path = root.join(rel);
    let meta =
        std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    let ft = meta.file_type();
    if rel != Path::new(".") && ft.is_dir() && is_nested(&meta) {
        return;
    }
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File {
            len: meta.len(),
            blake3: hash_file(&path),
            sparse: has_hole(&path, meta.len()),
        }
    } else if ft.is_symlink() {
        Kind::Symlink(
            std::fs::read_link(&path)
                .unwrap_or_else(|e| panic!("readlink {}: {e}", path.display())),
        )
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_char_device() {
        Kind::CharDevice(meta.rdev())
    } else {
        Kind::BlockDevice(meta.rdev())
    };
    if !ft.is_dir() && meta.nlink() > 1 {
        inodes
            .entry((meta.dev(), meta.ino()))
            .or_default()
            .push(rel.to_path_buf());
    }
    entries.insert(
        rel.to_path_buf(),
        Entry {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            xattrs: xattrs(&path),
            linked_with: None,
        },
    );
    if ft.is_dir() {
        let children =
            std::fs::read_dir(&path).unwrap_or_else(|e| panic!("readdir {}: {e}", path.display()));
        for child in children {
            let child = child.unwrap_or_else(|e| panic!("readdir {}: {e}", path.display()));
            walk(root, &rel.join(child.file_name()), entries, inodes);
        }
    }
}

/// btrfs's block size on the test pools (and everywhere on x86-64).
const BLOCK: u64 = 4096;

/// Whether the file has a hole before its last block (`SEEK_HOLE`).
fn has_hole(path: &Path, len: u64) -> bool {
    let whole = len - len % BLOCK;
    if whole == 0 {
        return false;
    }
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let hole = nix::unistd::lseek(&file, 0, nix::unistd::Whence::SeekHole)
        .unwrap_or_else(|e| panic!("SEEK_HOLE {}: {e}", path.display()));
    u64::try_from(hole).is_ok_and(|h| h < whole)
}

/// A nested subvolume (its root is inode 256), or the empty directory a
/// snapshot holds where its source had one (inode 2): btrfs send leaves both
/// out, so they are no part of what a replica must preserve.
fn is_nested(meta: &std::fs::Metadata) -> bool {
    matches!(meta.ino(), 256 | 2)
}

fn hash_file(path: &Path) -> String {
    let mut file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finalize().to_hex().to_string()
}

/// The xattrs of `path` itself (a symlink's own, not its target's).
fn xattrs(path: &Path) -> BTreeMap<OsString, Vec<u8>> {
    let names = xattr::list(path).unwrap_or_else(|e| panic!("listxattr {}: {e}", path.display()));
    names
        .map(|name| {
            let value = xattr::get(path, &name)
                .unwrap_or_else(|e| panic!("getxattr {}: {e}", path.display()))
                .unwrap_or_default();
            (name, value)
        })
        .collect()
}

/// The first difference between two trees, in path order, in words; None when equal.
pub fn tree_difference(a: &Tree, b: &Tree) -> Option<String> {
    let paths: std::collections::BTreeSet<&PathBuf> = a.0.keys().chain(b.0.keys()).collect();
    for path in paths {
        let p = path.display();
        match (a.0.get(path), b.0.get(path)) {
            (Some(_), None) => return Some(format!("{p}: only in the first tree")),
            (None, Some(_)) => return Some(format!("{p}: only in the second tree")),
            (Some(x), Some(y)) if x != y => return Some(format!("{p}: {}", Diff(x, y))),
            _ => {}
        }
    }
    None
}

struct Diff<'a>(&'a Entry, &'a Entry);

impl fmt::Display for Diff<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, y) = (self.0, self.1);
        if x.kind != y.kind {
            return write!(f, "{:?} vs {:?}", x.kind, y.kind);
        }
        if x.mode != y.mode {
            return write!(f, "mode {:o} vs {:o}", x.mode, y.mode);
        }
        if (x.uid, x.gid) != (y.uid, y.gid) {
            return write!(f, "owner {}:{} vs {}:{}", x.uid, x.gid, y.uid, y.gid);
        }
        if x.xattrs != y.xattrs {
            return write!(f, "xattrs {:?} vs {:?}", x.xattrs, y.xattrs);
        }
        write!(
            f,
            "hard links: linked with {:?} vs {:?}",
            x.linked_with, y.linked_with
        )
    }
}

/// Panics with the first difference when the trees under `a` and `b` differ.
pub fn assert_same_tree(a: &Path, b: &Path) {
    if let Some(diff) = tree_difference(&tree_digest(a), &tree_digest(b)) {
        panic!("trees differ: {} vs {}: {diff}", a.display(), b.display());
    }
}
