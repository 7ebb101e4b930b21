//! The bad-input sweep: a table of what a new user might type, one line per
//! case (where it runs, the arguments, the exit code, the one line on stderr),
//! each run with the real binary and each checked to change nothing: every
//! appliance's database dump, its state dir and the pools' trees are compared.
//!
//! `{name}` in arguments and patterns stands for a path or value of the world
//! the sweep builds once (see `World::vars`); `{toml:TEXT}` for a config file
//! holding TEXT (`\n` for a new line). A pattern is the whole stderr line, where
//! `*` stands for any text.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::common::ferry::{dump_db, Node};
use crate::common::{run, TestPool};

/// The appliance a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum At {
    /// A state dir nobody initialized.
    Fresh,
    /// nas1: sends share `photos` to nas2 (task `photos`), knows nas2.
    Src,
    /// nas2: pool `backup`, knows nas1, holds a replica of nas1's `photos`.
    Dst,
    /// nas1's state dir, by a user who is not root.
    NotRoot,
    /// An initialized appliance whose key.pem was deleted.
    KeyLost,
    /// An initialized appliance whose state.db is 0 bytes.
    DbEmpty,
    /// An initialized appliance whose state.db is gone (key and certificate kept).
    DbLost,
    /// A state.db written by a newer ferry (schema 99).
    DbNewer,
    /// An initialized state dir on a read-only mount.
    ReadOnly,
}

struct Case {
    at: At,
    args: &'static [&'static str],
    code: i32,
    pattern: &'static str,
}

const fn case(at: At, args: &'static [&'static str], code: i32, pattern: &'static str) -> Case {
    Case {
        at,
        args,
        code,
        pattern,
    }
}

use At::*;

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Running without init.
    case(Fresh, &["id"], 2, "ferry: no ferry state in {fresh}: run `ferry init` first, or point --state-dir at an initialized directory"),
    case(Fresh, &["appliance", "list"], 2, "ferry: no ferry state in {fresh}: run `ferry init` first*"),
    case(Fresh, &["pool", "add", "backup", "{dst}"], 2, "ferry: no ferry state in {fresh}: run `ferry init` first*"),
    case(Fresh, &["task", "list", "--json"], 2, "ferry: no ferry state in {fresh}: run `ferry init` first*"),
    case(Fresh, &["history", "receive"], 2, "ferry: no ferry state in {fresh}: run `ferry init` first*"),
    case(Fresh, &["status"], 2, "ferry: no ferry state in {fresh}: run `ferry init` first*"),
    case(Fresh, &["receiver"], 2, "ferry: no ferry state in {fresh}: run `ferry init` first*"),
    case(Fresh, &["sender"], 2, "ferry: no ferry state in {fresh}: run `ferry init` first*"),
    case(Fresh, &["init", "--name", "a/b"], 2, "ferry: appliance name \"a/b\" contains '/'*"),
    case(Fresh, &["init", "--name", ""], 2, "ferry: appliance name*empty*"),
    case(Fresh, &["init", "--name", "{long}"], 2, "ferry: appliance name*longer than*"),
    case(Fresh, &["init", "--name", "nas one"], 2, "ferry: appliance name*"),
    case(Fresh, &["init", "--name", "nås"], 2, "ferry: appliance name*"),
    case(Fresh, &["init", "--name", ".nas"], 2, "ferry: appliance name*starts with '.'*"),
    // State dirs that are not what they should be.
    case(Src, &["--state-dir", "{file}", "status"], 2, "ferry: state dir {file} is not a directory (a file is in the way); point --state-dir, FERRY_STATE_DIR or the config file's state_dir at a directory"),
    case(Src, &["--state-dir", "{file}", "init", "--name", "x"], 2, "ferry: state dir {file} is not a directory (a file is in the way)*"),
    case(Src, &["--state-dir", "{file}/state", "init", "--name", "x"], 2, "ferry: state dir {file}/state is not a directory (a file is in the way)*"),
    case(NotRoot, &["status"], 2, "ferry: cannot use the ferry state in {src_state}: permission denied; run ferry as root, as its daemons run"),
    case(NotRoot, &["appliance", "list"], 2, "ferry: cannot use the ferry state in {src_state}: permission denied*"),
    case(NotRoot, &["init", "--name", "x"], 2, "ferry: cannot use the ferry state in {src_state}: permission denied*"),
    case(NotRoot, &["--state-dir", "/root/ferry-test-state", "init", "--name", "x"], 2, "ferry: cannot use the ferry state in /root/ferry-test-state: permission denied; run ferry as root, as its daemons run"),
    case(KeyLost, &["id"], 2, "ferry: {key_lost}/key.pem is missing; `ferry init --repair` makes a new key and certificate with this appliance's uuid (peers then need its new fingerprint)"),
    case(KeyLost, &["init"], 2, "ferry: {key_lost} is initialized as k (*), but {key_lost}/key.pem is missing; `ferry init --repair` makes*"),
    case(KeyLost, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{fp_other}"], 2, "ferry: {key_lost}/key.pem is missing; `ferry init --repair`*"),
    case(KeyLost, &["receiver"], 2, "ferry: {key_lost}/key.pem is missing; `ferry init --repair`*"),
    case(KeyLost, &["sender"], 2, "ferry: {key_lost}/key.pem is missing; `ferry init --repair`*"),
    case(DbEmpty, &["status"], 2, "ferry: the state database {db_empty}/state.db is empty (0 bytes); `ferry init --repair` rebuilds it, keeping this appliance's uuid, key and certificate"),
    case(DbEmpty, &["receiver"], 2, "ferry: the state database {db_empty}/state.db is empty (0 bytes); `ferry init --repair`*"),
    case(DbEmpty, &["init"], 2, "ferry: the state database {db_empty}/state.db is empty (0 bytes); `ferry init --repair`*"),
    case(DbEmpty, &["init", "--name", "z"], 2, "ferry: the state database {db_empty}/state.db is empty (0 bytes); `ferry init --repair`*"),
    case(DbEmpty, &["id"], 2, "ferry: the state database {db_empty}/state.db is empty (0 bytes); `ferry init --repair`*"),
    case(DbLost, &["status"], 2, "ferry: {db_lost} has this appliance's key and certificate but no state database (lost?); `ferry init --repair` rebuilds it, keeping this appliance's uuid, key and certificate"),
    case(DbLost, &["init", "--name", "l"], 2, "ferry: {db_lost} has this appliance's key and certificate but no state database (lost?)*"),
    case(DbLost, &["receiver"], 2, "ferry: {db_lost} has this appliance's key and certificate but no state database (lost?)*"),
    case(DbNewer, &["status"], 2, "ferry: the state database {db_newer}/state.db was written by a newer ferry (schema 99 > *); upgrade ferry to use it"),
    case(DbNewer, &["sender"], 2, "ferry: the state database {db_newer}/state.db was written by a newer ferry*"),
    case(DbNewer, &["init"], 2, "ferry: the state database {db_newer}/state.db was written by a newer ferry*"),
    case(DbNewer, &["init", "--repair"], 2, "ferry: the state database {db_newer}/state.db was written by a newer ferry*"),
    case(ReadOnly, &["status"], 2, "ferry: state dir {read_only} is on a read-only filesystem, and ferry writes its database there; remount it read-write, or point --state-dir at a writable directory"),
    case(ReadOnly, &["sender"], 2, "ferry: state dir {read_only} is on a read-only filesystem*"),
    case(ReadOnly, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{fp_other}"], 2, "ferry: state dir {read_only} is on a read-only filesystem*"),
    case(ReadOnly, &["init", "--repair"], 2, "ferry: state dir {read_only} is on a read-only filesystem*"),
    case(Fresh, &["init", "--repair"], 2, "ferry: nothing to repair: {fresh} was never initialized; run `ferry init`"),
    case(Src, &["init", "--repair", "--name", "other"], 2, "ferry: {src_state} is nas1 (*); a repair never renames an appliance, so \"other\" was not applied and nothing changed"),
    // Usage.
    case(Src, &["frobnicate"], 2, "ferry: unrecognized subcommand 'frobnicate' (see 'ferry --help')"),
    case(Src, &["task"], 2, "ferry: *(see 'ferry task --help')"),
    case(Src, &["task", "explode"], 2, "ferry: unrecognized subcommand 'explode' (see 'ferry task --help')"),
    case(Src, &["appliance", "add"], 2, "ferry: the following required arguments were not provided: --address <ADDRESS> --fingerprint <FINGERPRINT> <NAME> (see 'ferry appliance add --help')"),
    case(Src, &["history", "send", "--limit", "0"], 2, "ferry: invalid value '0' for '--limit <LIMIT>': *"),
    case(Src, &["history", "send", "--limit", "many"], 2, "ferry: invalid value 'many' for '--limit <LIMIT>': *"),
    case(Src, &["history", "send", "--bogus"], 2, "ferry: unexpected argument '--bogus' found*"),
    case(Src, &["tasks", "list"], 2, "ferry: unrecognized subcommand 'tasks'; tip: *'task' (see 'ferry --help')"),
    case(Src, &["history", "send", "--limit", "-1"], 2, "ferry: invalid value '-1' for '--limit <LIMIT>': must be a whole number from 1 to 4294967295 (see 'ferry history send --help')"),
    case(Src, &["--state-dir", "relative/state", "status"], 2, "ferry: state dir relative/state (--state-dir or FERRY_STATE_DIR) is a relative path; give an absolute one, e.g. /relative/state, as the config file's state_dir must be"),
    case(Src, &["--state-dir", ".", "init", "--name", "x"], 2, "ferry: state dir . (--state-dir or FERRY_STATE_DIR) is a relative path*"),
    // Appliances.
    case(Src, &["appliance", "add", "nas2", "--address", "h", "--fingerprint", "{fp_other}"], 2, "ferry: appliance nas2 already exists; change it with `ferry appliance set nas2` or pick another name"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{nas2_fp}"], 2, "ferry: fingerprint {nas2_fp} already belongs to appliance nas2; one appliance, one name"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{nas1_fp}"], 2, "ferry: fingerprint {nas1_fp} is this appliance's own; give the peer's, from `ferry id` on the peer"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "abc"], 2, "ferry: fingerprint \"abc\": *64 hex*"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "SHA256:{zz64}"], 2, "ferry: fingerprint *"),
    case(Src, &["appliance", "add", "x", "--address", "nas 3", "--fingerprint", "{fp_other}"], 2, "ferry: address \"nas 3\" is not a valid host name; give a host name or an IP address"),
    case(Src, &["appliance", "add", "x", "--address", "http://nas3", "--fingerprint", "{fp_other}"], 2, "ferry: address \"http://nas3\" is not a valid host name*"),
    case(Src, &["appliance", "add", "x", "--address", "1.2.3.4:22", "--fingerprint", "{fp_other}"], 2, "ferry: address \"1.2.3.4:22\"*"),
    case(Src, &["appliance", "add", "x", "--address", "", "--fingerprint", "{fp_other}"], 2, "ferry: address \"\" is not 1 to 253 characters long*"),
    case(Src, &["appliance", "add", "x", "--address", "{long}", "--fingerprint", "{fp_other}"], 2, "ferry: address*"),
    case(Src, &["appliance", "add", "../x", "--address", "h", "--fingerprint", "{fp_other}"], 2, "ferry: appliance name \"../x\"*"),
    case(Src, &["appliance", "add", "{long}", "--address", "h", "--fingerprint", "{fp_other}"], 2, "ferry: appliance name*longer than*"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{fp_other}", "--meta-port", "0"], 2, "ferry: invalid value '0' for '--meta-port <META_PORT>': *"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{fp_other}", "--data-port", "65536"], 2, "ferry: invalid value '65536' for '--data-port <DATA_PORT>': *"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{fp_other}", "--meta-port", "port"], 2, "ferry: invalid value 'port' for '--meta-port <META_PORT>': *"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{fp_other}", "--meta-port", "5000", "--data-port", "5000"], 2, "ferry: --meta-port and --data-port are both 5000; they must differ: a receiver listens on a meta port and a data port"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{fp_other}", "--meta-port", "10002"], 2, "ferry: --meta-port and --data-port are both 10002; they must differ*"),
    case(Src, &["appliance", "add", "x", "--address", "h", "--fingerprint", "{fp_other}", "--meta-port", "-1"], 2, "ferry: invalid value '-1' for '--meta-port <META_PORT>': must be a port number from 1 to 65535 (see 'ferry appliance add --help')"),
    case(Src, &["appliance", "set", "nas2", "--meta-port", "10002"], 2, "ferry: --meta-port and nas2's data port are both 10002; they must differ*"),
    case(Src, &["appliance", "set", "nas2", "--data-port", "10003"], 2, "ferry: nas2's meta port and --data-port are both 10003; they must differ*"),
    case(Src, &["appliance", "set", "nas2", "--meta-port", "7", "--data-port", "7"], 2, "ferry: --meta-port and --data-port are both 7; they must differ*"),
    case(Src, &["appliance", "set", "nas2", "--data-port", "0"], 2, "ferry: invalid value '0' for '--data-port <DATA_PORT>': must be a port number from 1 to 65535 (see 'ferry appliance set --help')"),
    case(Src, &["appliance", "set", "nope", "--address", "h"], 2, "ferry: no appliance named nope; `ferry appliance list` shows the known ones"),
    case(Src, &["appliance", "set", "nas2"], 2, "ferry: nothing to change; give --address, --fingerprint, --meta-port or --data-port"),
    case(Src, &["appliance", "set", "nas2", "--address", "a b"], 2, "ferry: address \"a b\"*"),
    case(Src, &["appliance", "set", "nas2", "--fingerprint", "{nas1_fp}"], 2, "ferry: fingerprint {nas1_fp} is this appliance's own*"),
    case(Src, &["appliance", "remove", "nope"], 2, "ferry: no appliance named nope; `ferry appliance list` shows the known ones"),
    case(Src, &["appliance", "remove", "nas2"], 2, "ferry: appliance nas2 is the target of task(s) custom, photos; delete them first (`ferry task delete NAME --yes`)"),
    // Pools.
    case(Dst, &["pool", "add", "x", "{file}"], 2, "ferry: pool path {file} is a file, not a btrfs subvolume; give a subvolume (`btrfs subvolume create` makes one) or the filesystem's mount point"),
    case(Dst, &["pool", "add", "x", "{plain}"], 2, "ferry: pool path {plain} is a plain directory, not a btrfs subvolume; give a subvolume*"),
    case(Dst, &["pool", "add", "x", "{tmpfs}"], 2, "ferry: pool path {tmpfs} is not on a btrfs filesystem; give a mounted btrfs filesystem or subvolume"),
    case(Dst, &["pool", "add", "x", "/nonexistent/pool"], 2, "ferry: pool path /nonexistent/pool does not exist; give the path of an existing btrfs subvolume"),
    case(Dst, &["pool", "add", "x", "/dev/null"], 2, "ferry: pool path /dev/null is not a directory (a device, socket or pipe), not a btrfs subvolume*"),
    case(Dst, &["pool", "add", "x", "{replica}"], 2, "ferry: pool path {replica} is inside a pool's .ferry directory, where ferry keeps the replicas it receives (retention deletes them); give a subvolume of your own"),
    case(Dst, &["pool", "add", "x", "{ferry_dir}"], 2, "ferry: pool path {ferry_dir} is inside a pool's .ferry directory*"),
    case(Dst, &["pool", "add", "x", "{src_snapshot}"], 2, "ferry: pool path {src_snapshot} is inside .ferry-snapshots, where ferry keeps the snapshots it sends*"),
    case(Dst, &["pool", "add", "x", "{ro_snapshot}"], 2, "ferry: pool path {ro_snapshot} is a read-only subvolume (a snapshot or a replica), which btrfs receive cannot write into; give a writable subvolume or the filesystem's mount point"),
    case(Dst, &["pool", "add", "backup", "{src}"], 2, "ferry: pool backup already exists, at {dst}; pick another name, or `ferry pool remove backup` first, which leaves its replicas on disk (`ferry pool list` shows the pools)"),
    case(Dst, &["pool", "add", "x", "{dst}"], 2, "ferry: {dst} is already pool backup; a path belongs to one pool: tasks send there with --pool backup (`ferry pool list` shows the pools, `ferry pool remove backup` frees the path)"),
    case(Dst, &["pool", "add", "x", "{dst}/"], 2, "ferry: {dst} is already pool backup; a path belongs to one pool*"),
    case(Dst, &["pool", "add", "backup", "{dst}"], 2, "ferry: {dst} is already pool backup; nothing to add (`ferry pool list` shows the pools)"),
    case(Dst, &["pool", "add", "..", "{src}"], 2, "ferry: pool name \"..\"*"),
    case(Dst, &["pool", "add", "a/b", "{src}"], 2, "ferry: pool name \"a/b\" contains '/'*"),
    case(Dst, &["pool", "add", "{long}", "{src}"], 2, "ferry: pool name*longer than*"),
    case(Dst, &["pool", "add", "bäckup", "{src}"], 2, "ferry: pool name*"),
    case(Dst, &["pool", "remove", "nope"], 2, "ferry: no pool named nope; `ferry pool list` shows the known ones"),
    case(Dst, &["receiver", "--meta-port", "7000", "--data-port", "7000"], 2, "ferry: --meta-port and --data-port are both 7000; they must differ: a receiver listens on a meta port and a data port"),
    case(Dst, &["receiver", "--meta-port", "10002"], 2, "ferry: --meta-port and the configured data port are both 10002; they must differ*"),
    case(Dst, &["--config", "{toml:[receiver]\\ndata_port = 9000}", "receiver", "--meta-port", "9000"], 2, "ferry: --meta-port and the configured data port are both 9000; they must differ*"),
    case(Dst, &["receiver", "--meta-port", "-1"], 2, "ferry: invalid value '-1' for '--meta-port <META_PORT>': must be a port number from 1 to 65535, or 0 for any free port (see 'ferry receiver --help')"),
    case(Dst, &["receiver", "--max-receives", "0"], 2, "ferry: invalid value '0' for '--max-receives <MAX_RECEIVES>': must be a whole number from 1 to 1024 (see 'ferry receiver --help')"),
    case(Dst, &["receiver", "--max-receives", "-3"], 2, "ferry: invalid value '-3' for '--max-receives <MAX_RECEIVES>': must be a whole number from 1 to 1024*"),
    case(Dst, &["receiver", "--metrics", "127.0.0.1:99999"], 2, "ferry: invalid value '127.0.0.1:99999' for '--metrics <ADDR:PORT>': port 99999 is out of range; give ADDR:PORT, an IP address and a port from 1 to 65535 (0 for any free port), e.g. 127.0.0.1:9100 or [::1]:9100 (see 'ferry receiver --help')"),
    case(Dst, &["receiver", "--metrics", "localhost:9100"], 2, "ferry: invalid value 'localhost:9100' for '--metrics <ADDR:PORT>': \"localhost\" is not an IP address (host names are not looked up); give ADDR:PORT*"),
    case(Dst, &["receiver", "--metrics", "::1:9100"], 2, "ferry: invalid value '::1:9100' for '--metrics <ADDR:PORT>': \"::1:9100\" has no port; give ADDR:PORT*[::1]:9100*"),
    case(Dst, &["receiver", "--listen", "1.2.3"], 2, "ferry: invalid value '1.2.3' for '--listen <ADDR>': \"1.2.3\" is not an IP address (host names are not looked up); give an IP address, e.g. 0.0.0.0 (every IPv4 address), :: or 192.0.2.10 (see 'ferry receiver --help')"),
    case(Dst, &["receiver", "--listen", "0.0.0.0:10003"], 2, "ferry: invalid value '0.0.0.0:10003' for '--listen <ADDR>': \"0.0.0.0:10003\" has a port; the meta and data ports are set on their own; give an IP address*"),
    case(Src, &["sender", "--metrics", "127.0.0.1"], 2, "ferry: invalid value '127.0.0.1' for '--metrics <ADDR:PORT>': \"127.0.0.1\" has no port; give ADDR:PORT, an IP address and a port from 1 to 65535 (0 for any free port), e.g. 127.0.0.1:9100 or [::1]:9100 (see 'ferry sender --help')"),
    case(Src, &["sender", "--metrics", "127.0.0.1:99999"], 2, "ferry: invalid value '127.0.0.1:99999' for '--metrics <ADDR:PORT>': port 99999 is out of range; give ADDR:PORT*(see 'ferry sender --help')"),
    case(Dst, &["pool", "add", "x"], 2, "ferry: the following required arguments were not provided: <PATH> (see 'ferry pool add --help')"),
    // Tasks.
    case(Src, &["task", "add", "docs", "--share", "{file}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share path {file} is a file, not a btrfs subvolume; give a subvolume*"),
    case(Src, &["task", "add", "docs", "--share", "{plain}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share path {plain} is a plain directory, not a btrfs subvolume*"),
    case(Src, &["task", "add", "docs", "--share", "{tmpfs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share path {tmpfs} is not on a btrfs filesystem*"),
    case(Src, &["task", "add", "docs", "--share", "no/such/share", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share path no/such/share does not exist; give the path of an existing btrfs subvolume (a relative path starts in the current directory)"),
    case(Src, &["task", "add", "docs", "--share", "/nonexistent/share", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share path /nonexistent/share does not exist; give the path of an existing btrfs subvolume"),
    case(Src, &["task", "add", "docs", "--share", "{src_snapshot}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share path {src_snapshot} is inside .ferry-snapshots, where ferry keeps the snapshots it sends (retention deletes them); give a subvolume of your own"),
    case(Src, &["task", "add", "docs", "--share", "{custom_snapshot}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share path {custom_snapshot} is inside task custom's snapshot dir {custom_dir}, where ferry keeps the snapshots it sends*"),
    case(Src, &["task", "add", "docs", "--share", "{replica}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share path {replica} is inside a pool's .ferry directory*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--snapshot-dir", "{src}/.ferry/snaps"], 2, "ferry: snapshot dir path {src}/.ferry/snaps is inside a pool's .ferry directory*"),
    case(Src, &["task", "add", "photos", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: task photos already exists; pick another name or delete it first"),
    case(Src, &["task", "add", "other", "--share", "{share}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: task photos already sends a share named photos to nas2*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nope", "--pool", "backup", "--frequency", "5m"], 2, "ferry: no appliance named nope; add it first with `ferry appliance add nope --address HOST --fingerprint FP`"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "../x", "--frequency", "5m"], 2, "ferry: pool name \"../x\"*"),
    case(Src, &["task", "add", "a b", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: task name \"a b\"*"),
    case(Src, &["task", "add", "{long}", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: task name*longer than*"),
    case(Src, &["task", "add", "dócs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: task name*"),
    case(Src, &["task", "add", "docs", "--share", "{dotted}", "--target", "nas2", "--pool", "backup", "--frequency", "5m"], 2, "ferry: share name \".docs\"*starts with '.'*(the share's directory name names it on the target; give another with --replica-name NAME)"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--replica-name", "a/b"], 2, "ferry: share name \"a/b\"*contains '/'*(--replica-name names the replica line on the target)"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "30s"], 2, "ferry: *60*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "* * * * * *"], 2, "ferry: *60*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "soon"], 2, "ferry: *soon*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "0"], 2, "ferry: *"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--keep-source", "0"], 2, "ferry: invalid value '0' for '--keep-source <KEEP_SOURCE>': *"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--keep-target", "lots"], 2, "ferry: invalid value 'lots' for '--keep-target <KEEP_TARGET>': *"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--compress", "20"], 2, "ferry: invalid value '20' for '--compress <COMPRESS>': give auto, a zstd level 1-19, or 0 for no compression*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--snapshot-dir", "{docs}/snaps"], 2, "ferry: snapshot dir {docs}/snaps is inside the share {docs}*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--snapshot-dir", "{tmpfs}/snaps"], 2, "ferry: snapshot dir {tmpfs}/snaps is not on the share's filesystem*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--snapshot-dir", "{file}/snaps"], 2, "ferry: snapshot dir {file} is not a directory; give a --snapshot-dir that is one, or a path where ferry can make one"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "-5"], 2, "ferry: invalid value '-5' for '--frequency <FREQUENCY>': must be positive: seconds (300), a duration (5m, 1h) or a cron expression, at least every 60s (see 'ferry task add --help')"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency=-5"], 2, "ferry: invalid value '-5' for '--frequency <FREQUENCY>': must be positive*(see 'ferry task add --help')"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "-5m"], 2, "ferry: invalid value '-5m' for '--frequency <FREQUENCY>': must be positive*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--keep-source", "-1"], 2, "ferry: invalid value '-1' for '--keep-source <KEEP_SOURCE>': must be a whole number from 1 to 4294967295 (see 'ferry task add --help')"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--keep-target", "-5"], 2, "ferry: invalid value '-5' for '--keep-target <KEEP_TARGET>': must be a whole number from 1*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--compress", "-1"], 2, "ferry: invalid value '-1' for '--compress <COMPRESS>': give auto, a zstd level 1-19, or 0 for no compression (see 'ferry task add --help')"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--data-port", "10003"], 2, "ferry: nas2's meta port and --data-port are both 10003; they must differ: a receiver listens on a meta port and a data port"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--meta-port", "10002"], 2, "ferry: --meta-port and nas2's data port are both 10002; they must differ*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--meta-port", "9", "--data-port", "9"], 2, "ferry: --meta-port and --data-port are both 9; they must differ*"),
    case(Src, &["task", "add", "docs", "--share", "{docs}", "--target", "nas2", "--pool", "backup", "--frequency", "5m", "--meta-port", "0"], 2, "ferry: invalid value '0' for '--meta-port <META_PORT>': give a port 1-65535, or `default` for the appliance's (see 'ferry task add --help')"),
    case(Src, &["task", "set", "photos", "--data-port", "10003"], 2, "ferry: task photos's meta and data ports (its own, else nas2's) are both 10003; they must differ: a receiver listens on a meta port and a data port"),
    case(Src, &["task", "set", "photos", "--keep-target", "-1"], 2, "ferry: invalid value '-1' for '--keep-target <KEEP_TARGET>': must be a whole number from 1 to 4294967295 (see 'ferry task set --help')"),
    case(Src, &["task", "set", "photos", "--frequency", "-5"], 2, "ferry: invalid value '-5' for '--frequency <FREQUENCY>': must be positive*(see 'ferry task set --help')"),
    case(Src, &["task", "show", "nope"], 2, "ferry: no task named nope; `ferry task list` shows the tasks"),
    case(Src, &["task", "enable", "nope"], 2, "ferry: no task named nope*"),
    case(Src, &["task", "disable", "nope"], 2, "ferry: no task named nope*"),
    case(Src, &["task", "run", "nope"], 2, "ferry: no task named nope*"),
    case(Src, &["task", "delete", "nope", "--yes"], 2, "ferry: no task named nope*"),
    case(Src, &["task", "delete", "photos"], 2, "ferry: refusing to delete task photos without --yes; it has no snapshots here, and its history is kept"),
    case(Src, &["history", "send", "--task", "nope"], 2, "ferry: no task named nope, and no history for one; `ferry task list` shows the tasks"),
    case(Src, &["history", "receive", "--source", "nope"], 2, "ferry: no appliance named nope, and no history from one; `ferry appliance list` shows them"),
    // Configuration files.
    case(Src, &["--config", "/nonexistent/ferry.toml", "status"], 2, "ferry: config file /nonexistent/ferry.toml does not exist; create it from ferry.toml.sample, or name another with --config"),
    case(Src, &["--config", "{toml:frobnicate = 1}", "status"], 2, "ferry: {toml:frobnicate = 1}:1: frobnicate: unknown key (expected one of *)"),
    case(Src, &["--config", "{toml:[receiver]\\nmeta_port = 0}", "status"], 2, "ferry: {toml:[receiver]\\nmeta_port = 0}: receiver.meta_port: port must be between 1 and 65535"),
    case(Src, &["--config", "{toml:[receiver]\\nmeta_port = 70000}", "status"], 2, "ferry: {toml:[receiver]\\nmeta_port = 70000}:2: receiver.meta_port: *"),
    case(Src, &["--config", "{toml:[receiver]\\nmeta_port = \"x\"}", "status"], 2, "ferry: {toml:[receiver]\\nmeta_port = \"x\"}:2: receiver.meta_port: *"),
    case(Src, &["--config", "{toml:[receiver]\\nmeta_port = 10002}", "status"], 2, "ferry: {toml:[receiver]\\nmeta_port = 10002}: receiver.data_port: 10002 is also receiver.meta_port; they must differ"),
    case(Src, &["--config", "{toml:[sender]\\nmax_sends = 0}", "status"], 2, "ferry: {toml:[sender]\\nmax_sends = 0}: sender.max_sends: must be at least 1"),
    case(Src, &["--config", "{toml:[sender]\\nretry_first = \"10s\"}", "status"], 2, "ferry: {toml:[sender]\\nretry_first = \"10s\"}: sender.retry_first: must be at least 60s*"),
    case(Src, &["--config", "{toml:[sender]\\nretry_first = \"soon\"}", "status"], 2, "ferry: {toml:[sender]\\nretry_first = \"soon\"}:2: sender.retry_first: \"soon\" is not a duration*"),
    case(Src, &["--config", "{toml:[sender]\\nretry_first = \"2h\"}", "status"], 2, "ferry: {toml:[sender]\\nretry_first = \"2h\"}: sender.retry_first: 2h is longer than sender.retry_max (1h)"),
    case(Src, &["--config", "{toml:log_level = \"loud\"}", "status"], 2, "ferry: {toml:log_level = \"loud\"}:1: log_level: *"),
    case(Src, &["--config", "{toml:[receiver]\\nlisten = \"everywhere\"}", "status"], 2, "ferry: {toml:[receiver]\\nlisten = \"everywhere\"}:2: receiver.listen: \"everywhere\" is not an IP address (host names are not looked up); give an IP address, e.g. 0.0.0.0 (every IPv4 address), :: or 192.0.2.10"),
    case(Src, &["--config", "{toml:[receiver]\\nmetrics_listen = \"127.0.0.1:99999\"}", "status"], 2, "ferry: {toml:[receiver]\\nmetrics_listen = \"127.0.0.1:99999\"}:2: receiver.metrics_listen: port 99999 is out of range; give ADDR:PORT, an IP address and a port from 1 to 65535 (0 for any free port), e.g. 127.0.0.1:9100 or [::1]:9100"),
    case(Src, &["--config", "{toml:[sender]\\nmetrics_listen = \"nas1:9100\"}", "sender"], 2, "ferry: {toml:[sender]\\nmetrics_listen = \"nas1:9100\"}:2: sender.metrics_listen: \"nas1\" is not an IP address (host names are not looked up); give ADDR:PORT*"),
    case(Src, &["--config", "{toml:[receiver\\n}", "status"], 2, "ferry: {toml:[receiver\\n}:1: *"),
    case(Src, &["--config", "{toml:[receiver]\\nmax_receives = -1}", "status"], 2, "ferry: *receiver.max_receives: *"),
    case(Src, &["--config", "{toml:[receiver]\\ndata_timeout = \"0s\"}", "status"], 2, "ferry: *receiver.data_timeout: must be longer than 0s"),
    case(Src, &["--config", "{toml:state_dir = \"relative\"}", "status"], 2, "ferry: {toml:state_dir = \"relative\"}: state_dir: must be an absolute path*"),
    case(Src, &["--config", "{toml:[receiver]\\nmeta_port = 1\\nmeta_port = 2}", "status"], 2, "ferry: {toml:[receiver]\\nmeta_port = 1\\nmeta_port = 2}:3: *duplicate*"),
];

/// What a case may not change: per appliance, its database and state dir,
/// and every file in the pools.
fn world_state(w: &World) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for (name, dir) in [
        ("fresh", &w.fresh.state),
        ("nas1", &w.src_node.state),
        ("nas2", &w.dst_node.state),
        ("key lost", &w.key_lost.state),
        ("db empty", &w.db_empty.state),
        ("db lost", &w.db_lost.state),
        ("db newer", &w.db_newer.state),
        ("read-only", &w.read_only.state),
    ] {
        state.insert(format!("{name} db"), dump_db(&dir.join("state.db")));
        state.insert(format!("{name} dir"), listing(dir));
    }
    state.insert("src pool".into(), listing(&w.src.mount));
    state.insert("dst pool".into(), listing(&w.dst.mount));
    state
}

/// Every path under `dir` with its kind and size (a file's mtime or a
/// directory's link count may change as SQLite opens its database).
fn listing(dir: &Path) -> String {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let name = path.display().to_string();
            // SQLite's WAL files come and go as a command opens and closes the database.
            if name.ends_with("-wal") || name.ends_with("-shm") {
                continue;
            }
            if meta.is_dir() {
                out.push(format!("{name}/"));
                walk(&path, out);
            } else if meta.is_symlink() {
                let to = std::fs::read_link(&path).unwrap_or_default();
                out.push(format!("{name} -> {}", to.display()));
            } else {
                let size = if name.ends_with("state.db") {
                    0
                } else {
                    meta.len()
                };
                out.push(format!("{name} {size}"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out.join("\n")
}

/// A read-only bind mount of a directory over itself, undone on drop.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(dir: &Path) -> ReadOnlyMount {
        run(
            "mount",
            &["--bind".as_ref(), dir.as_os_str(), dir.as_os_str()],
        );
        let guard = ReadOnlyMount(dir.to_path_buf());
        run(
            "mount",
            &["-o".as_ref(), "remount,bind,ro".as_ref(), dir.as_os_str()],
        );
        guard
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Everything the cases run against, built once.
struct World {
    // First, so it is unmounted before its node's directory goes.
    _read_only_mount: ReadOnlyMount,
    src: TestPool,
    dst: TestPool,
    fresh: Node,
    src_node: Node,
    dst_node: Node,
    key_lost: Node,
    db_empty: Node,
    db_lost: Node,
    db_newer: Node,
    read_only: Node,
    files: tempfile::TempDir,
    vars: BTreeMap<&'static str, String>,
    configs: Mutex<BTreeMap<String, PathBuf>>,
}

fn utf8(p: &Path) -> String {
    p.to_str().expect("utf8").to_string()
}

impl World {
    fn new() -> World {
        let (src, dst) = (TestPool::new(), TestPool::new());
        let share = src.subvolume("photos");
        let docs = src.subvolume("docs");
        let dotted = src.subvolume(".docs");
        let custom = src.subvolume("custom");
        let plain = src.mount.join("plain dir");
        std::fs::create_dir(&plain).expect("plain dir");
        let file = src.mount.join("a file");
        std::fs::write(&file, b"not a directory").expect("file");
        let files = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");

        let src_node = Node::init("nas1");
        let dst_node = Node::init("nas2");
        let (nas1_fp, nas2_fp) = (src_node.fingerprint(), dst_node.fingerprint());
        let nas1_uuid = src_node.json(&["id", "--json"])["uuid"]
            .as_str()
            .expect("uuid")
            .to_string();
        src_node.ok(&[
            "appliance",
            "add",
            "nas2",
            "--address",
            "127.0.0.1",
            "--fingerprint",
            &nas2_fp,
        ]);
        dst_node.ok(&[
            "appliance",
            "add",
            "nas1",
            "--address",
            "127.0.0.1",
            "--fingerprint",
            &nas1_fp,
        ]);
        dst_node.ok(&["pool", "add", "backup", &utf8(&dst.mount)]);
        for (task, sub, extra) in [
            ("photos", &share, None),
            ("custom", &custom, Some(src.mount.join("custom-snaps"))),
        ] {
            let mut args = vec![
                "task".to_string(),
                "add".into(),
                task.into(),
                "--share".into(),
                utf8(sub),
                "--target".into(),
                "nas2".into(),
                "--pool".into(),
                "backup".into(),
                "--frequency".into(),
                "5m".into(),
            ];
            if let Some(dir) = extra {
                args.extend(["--snapshot-dir".into(), utf8(&dir)]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            src_node.ok(&args);
        }
        // A snapshot in ferry's default place and in task custom's own dir, a
        // read-only snapshot elsewhere, and a real replica of `photos` on nas2.
        let snapshot = |source: &Path, dir: PathBuf, name: &str| -> PathBuf {
            std::fs::create_dir_all(&dir).expect("snapshot dir");
            let to = dir.join(name);
            run(
                "btrfs",
                &[
                    "subvolume".as_ref(),
                    "snapshot".as_ref(),
                    "-r".as_ref(),
                    source.as_os_str(),
                    to.as_os_str(),
                ],
            );
            to
        };
        let src_snapshot = snapshot(
            &share,
            src.mount.join(".ferry-snapshots/photos"),
            "photos_photos_20260101T000000Z",
        );
        let custom_snapshot = snapshot(
            &custom,
            src.mount.join("custom-snaps"),
            "custom_custom_20260101T000000Z",
        );
        let ro_snapshot = snapshot(&docs, src.mount.join("snaps"), "docs-ro");
        let replica_dir = dst.mount.join(".ferry").join(&nas1_uuid).join("photos");
        std::fs::create_dir_all(&replica_dir).expect("replica dir");
        let stream = Command::new("btrfs")
            .args(["send", "-q"])
            .arg(&src_snapshot)
            .output()
            .expect("btrfs send");
        assert!(stream.status.success());
        let mut receive = Command::new("btrfs")
            .args(["receive", "-q"])
            .arg(&replica_dir)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("btrfs receive");
        use std::io::Write;
        receive
            .stdin
            .take()
            .expect("stdin")
            .write_all(&stream.stdout)
            .expect("feed btrfs receive");
        assert!(receive.wait().expect("wait").success());
        let replica = replica_dir.join("photos_photos_20260101T000000Z");

        let fresh = Node::uninitialized();
        let key_lost = Node::init("k");
        std::fs::remove_file(key_lost.state.join("key.pem")).expect("delete key.pem");
        let db_empty = Node::init("z");
        std::fs::write(db_empty.state.join("state.db"), b"").expect("truncate state.db");
        let db_lost = Node::init("l");
        std::fs::remove_file(db_lost.state.join("state.db")).expect("delete state.db");
        let db_newer = Node::init("n");
        rusqlite::Connection::open(db_newer.state.join("state.db"))
            .expect("open")
            .pragma_update(None, "user_version", 99)
            .expect("schema 99");
        let read_only = Node::init("r");
        let read_only_mount = ReadOnlyMount::new(&read_only.state);
        let mut vars = BTreeMap::new();
        vars.insert("src_state", utf8(&src_node.state));
        vars.insert("key_lost", utf8(&key_lost.state));
        vars.insert("db_empty", utf8(&db_empty.state));
        vars.insert("db_lost", utf8(&db_lost.state));
        vars.insert("db_newer", utf8(&db_newer.state));
        vars.insert("read_only", utf8(&read_only.state));
        vars.insert("fresh", utf8(&fresh.state));
        vars.insert("src", utf8(&src.mount));
        vars.insert("dst", utf8(&dst.mount));
        vars.insert("share", utf8(&share));
        vars.insert("docs", utf8(&docs));
        vars.insert("dotted", utf8(&dotted));
        vars.insert("plain", utf8(&plain));
        vars.insert("file", utf8(&file));
        vars.insert("tmpfs", utf8(files.path()));
        vars.insert("src_snapshot", utf8(&src_snapshot));
        vars.insert("custom_snapshot", utf8(&custom_snapshot));
        vars.insert("custom_dir", utf8(&src.mount.join("custom-snaps")));
        vars.insert("ro_snapshot", utf8(&ro_snapshot));
        vars.insert("replica", utf8(&replica));
        vars.insert("ferry_dir", utf8(&dst.mount.join(".ferry")));
        vars.insert("long", "n".repeat(300));
        vars.insert("zz64", "z".repeat(64));
        vars.insert("nas1_fp", nas1_fp);
        vars.insert("nas2_fp", nas2_fp);
        vars.insert("fp_other", format!("SHA256:{}", "ab".repeat(32)));
        World {
            _read_only_mount: read_only_mount,
            src,
            dst,
            fresh,
            src_node,
            dst_node,
            key_lost,
            db_empty,
            db_lost,
            db_newer,
            read_only,
            files,
            vars,
            configs: Mutex::default(),
        }
    }

    /// `text` with every `{name}` replaced; `{toml:TEXT}` becomes a config file.
    fn fill(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = closing(after) else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &after[..end];
            match (name.strip_prefix("toml:"), self.vars.get(name)) {
                (Some(body), _) => out.push_str(&utf8(&self.config(body))),
                (None, Some(value)) => out.push_str(value),
                // Not ours (a literal brace in a message).
                (None, None) => out.push_str(&rest[start..start + end + 2]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A config file holding `body` (with `\n` for new lines), one per body.
    fn config(&self, body: &str) -> PathBuf {
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        let n = configs.len();
        configs
            .entry(body.to_string())
            .or_insert_with(|| {
                let path = self.files.path().join(format!("ferry-{n}.toml"));
                std::fs::write(&path, body.replace("\\n", "\n")).expect("write config");
                path
            })
            .clone()
    }

    fn state_dir(&self, at: At) -> &Path {
        match at {
            Fresh => &self.fresh.state,
            Src | NotRoot => &self.src_node.state,
            Dst => &self.dst_node.state,
            KeyLost => &self.key_lost.state,
            DbEmpty => &self.db_empty.state,
            DbLost => &self.db_lost.state,
            DbNewer => &self.db_newer.state,
            ReadOnly => &self.read_only.state,
        }
    }

    fn run(&self, c: &Case) -> std::process::Output {
        let args: Vec<String> = c.args.iter().map(|a| self.fill(a)).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(&args)
            .env("FERRY_STATE_DIR", self.state_dir(c.at))
            .env("FERRY_CONFIG", "/dev/null")
            .env_remove("FERRY_LOG")
            .current_dir("/");
        if c.at == NotRoot {
            // nobody
            cmd.uid(65534).gid(65534);
        }
        cmd.output().expect("run ferry")
    }
}

/// The index of the `}` that closes a `{`, allowing nested braces.
fn closing(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, ch) in s.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Whether `text` matches `pattern`, where `*` stands for any text.
fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return text == pattern;
    }
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut at = first.len();
    let end = text.len() - last.len();
    for part in &parts[1..parts.len() - 1] {
        match text[at..end].find(part) {
            Some(i) => at += i + part.len(),
            None => return false,
        }
    }
    true
}

#[test]
fn the_pattern_matcher_reads_stars_as_any_text() {
    assert!(matches("a*c", "abbbc"));
    assert!(matches("a*b*c", "a-b-c"));
    assert!(!matches("a*b*c", "a-c-b"));
    assert!(matches("exact", "exact"));
    assert!(!matches("exact", "exactly"));
    assert!(matches("ab*ba", "aba-ba"));
    assert!(!matches("ab*ba", "aba"));
}

/// Every case: its exit code, exactly one line on stderr matching its
/// pattern, and nothing changed anywhere.
#[test]
fn every_bad_input_gets_one_line_its_exit_code_and_changes_nothing() {
    let w = World::new();
    // nobody must be able to run the binary for the NotRoot cases.
    let _ = std::fs::set_permissions(
        env!("CARGO_BIN_EXE_ferry"),
        std::fs::Permissions::from_mode(0o755),
    );
    let before = world_state(&w);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = CASES.get(i) else { break };
                if let Err(why) = check(&w, c, &before) {
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("case {i} {:?} {:?}: {why}", c.at, c.args));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

fn check(w: &World, c: &Case, before: &BTreeMap<String, String>) -> Result<(), String> {
    let out = w.run(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.trim_end();
    let expected = w.fill(c.pattern);
    let mut problems = Vec::new();
    if out.status.code() != Some(c.code) {
        problems.push(format!("exit {:?}, expected {}", out.status.code(), c.code));
    }
    if line.lines().count() != 1 {
        problems.push(format!("{} lines on stderr", line.lines().count()));
    }
    if !matches(&expected, line) {
        problems.push(format!("stderr {line:?} does not match {expected:?}"));
    }
    // Cases run four at a time: a change is one of them, most likely this one.
    let after = world_state(w);
    for (what, was) in before {
        if after.get(what) != Some(was) {
            problems.push(format!("{what} changed"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
