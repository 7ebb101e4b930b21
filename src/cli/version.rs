//! What `ferry --version` says: the release, the git commit it was built from,
//! the protocol major version and the optional features this appliance offers.

use crate::capabilities;
use crate::wire::PROTOCOL;

/// The release (Cargo.toml's version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit this binary was built from: `git rev-parse --short=12 HEAD` at
/// build time, `FERRY_GIT_COMMIT` for builds without `.git`, else `unknown`.
pub const COMMIT: &str = env!("FERRY_GIT_COMMIT");

/// `-V`: one line, `0.1.0 (commit 341b3f6abcde)`; clap puts `ferry ` before it.
pub fn short() -> String {
    format!("{VERSION} (commit {COMMIT})")
}

/// `--version`: the short line, then the protocol and the features, e.g.
///
/// ```text
/// 0.1.0 (commit 341b3f6abcde)
/// protocol: ferry/1
/// features: send-stream-v2, resume, retention-grid, failback-bases
/// ```
///
/// The features are probed (`capabilities::offered`), so only `--version` pays for it.
pub fn long() -> String {
    format!(
        "{}\nprotocol: {PROTOCOL}\nfeatures: {}",
        short(),
        capabilities::offered()
    )
}

/// Whether the command line asks for the long version: clap needs the text
/// before parsing, and the features probe is not free.
pub fn asked(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--version")
}
