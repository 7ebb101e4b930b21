//! The only code that runs btrfs-progs: snapshots, subvolume facts, send and receive streams.
//! Every failure names the command line that ran and what btrfs printed on stderr.

mod error;
mod fs;
mod ioctl;
mod parse;
mod process;
mod receive;
mod send;
mod snapshots;
mod subvolume;

pub use error::{one_line, Error};
pub use fs::{filesystem_uuid, is_btrfs, is_subvolume, same_filesystem};
pub use ioctl::transids;
pub use parse::{parse_show, ParseShowError};
pub use process::BTRFS;
pub use receive::{receive, Receive, Received};
pub use send::{send, SendExit, SendStream};
pub use snapshots::{commit_filesystem, delete, list, show, snapshot_readonly};
pub use subvolume::{Subvolume, Transids};
