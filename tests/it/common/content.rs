//! Share contents for replication tests: everything a replica must keep (contents,
//! modes, owners, symlinks, hard links, xattrs, a fifo, a sparse file) and changes to it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub fn write(path: &Path, data: &[u8]) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A share with the things a replica must keep: contents, modes, owners, symlinks,
/// hard links, xattrs, a fifo, and a sparse file.
pub fn populate(share: &Path) {
    std::fs::create_dir_all(share.join("docs/deep")).unwrap();
    write(&share.join("docs/a.txt"), b"alpha\n");
    write(&share.join("docs/deep/b.bin"), &vec![7u8; 300_000]);
    write(&share.join("to-delete"), b"bye");
    write(&share.join("to-rename"), b"moving");
    write(&share.join("secret"), b"s");
    std::fs::set_permissions(share.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(share.join("docs/a.txt"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::symlink("docs/a.txt", share.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/dangling", share.join("dangling")).unwrap();
    std::fs::hard_link(share.join("docs/a.txt"), share.join("hard")).unwrap();
    xattr::set(share.join("docs/a.txt"), "user.ferry", b"v1").unwrap();
    nix::unistd::mkfifo(
        &share.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let mut sparse = std::fs::File::create(share.join("sparse")).unwrap();
    sparse.set_len(16 << 20).unwrap();
    sparse.write_all(b"head").unwrap();
}

/// Modify, add, delete and rename between two snapshots.
pub fn change(share: &Path) {
    write(&share.join("docs/a.txt"), b"alpha, changed\n");
    write(&share.join("new"), b"fresh");
    std::fs::remove_file(share.join("to-delete")).unwrap();
    std::fs::rename(share.join("to-rename"), share.join("renamed")).unwrap();
    std::fs::rename(share.join("docs/deep"), share.join("deeper")).unwrap();
    std::fs::set_permissions(share.join("new"), std::fs::Permissions::from_mode(0o751)).unwrap();
    xattr::set(share.join("docs/a.txt"), "user.ferry", b"v2").unwrap();
    std::fs::hard_link(share.join("new"), share.join("new-again")).unwrap();
}

/// `len` bytes that do not compress (a counter through blake3's XOF).
pub fn incompressible(path: &Path, len: usize) {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(path.as_os_str().as_encoded_bytes())
        .finalize_xof()
        .fill(&mut out);
    write(path, &out);
}
