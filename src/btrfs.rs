//! The only code that runs btrfs-progs: snapshots, subvolume facts, send and receive streams.
