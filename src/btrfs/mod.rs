//! The only code that runs btrfs-progs: snapshots, subvolume facts, send and receive streams.
//! Every failure names the command line that ran and what btrfs printed on stderr.

mod copies;
mod error;
mod fs;
mod ioctl;
mod nested;
mod parse;
mod process;
mod qgroup;
mod receive;
mod send;
mod snapshots;
mod splice;
mod subvolume;
mod support;

pub use copies::{snapshot_as_received, snapshot_writable};
pub use error::{one_line, Error};
pub use fs::{compresses, filesystem_uuid, is_btrfs, is_subvolume, same_filesystem};
pub use ioctl::transids;
pub use nested::nested_subvolumes;
pub use parse::{parse_show, ParseShowError};
pub use process::BTRFS;
pub use qgroup::referenced;
pub use receive::{receive, Receive, Received};
pub use send::{send, send_with, SendExit, SendOptions, SendStream};
pub use snapshots::{
    commit_filesystem, delete, delete_lazily, list, show, snapshot_readonly, snapshot_to_send,
};
pub use subvolume::{Subvolume, Transids};
pub use support::{send_support, stream_version, SendSupport, STREAM_HEADER_LEN};
