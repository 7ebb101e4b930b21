//! The real binary's output: into a closed pipe it ends quietly, with the exit
//! code a shell reports for a tool ended by SIGPIPE.

use std::process::{Command, Stdio};

use crate::common::ferry::Node;

/// 128 + SIGPIPE.
const CLOSED_PIPE: i32 = 141;

/// Runs `args` with stdout a pipe nobody reads: its read end is closed before
/// the command starts, so the first write fails with EPIPE.
fn into_closed_pipe(node: &Node, args: &[&str]) -> std::process::Output {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_STATE_DIR", &node.state)
        .env("FERRY_CONFIG", "/dev/null")
        .env_remove("FERRY_LOG")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("run ferry")
}

/// Pins: `ferry appliance list --json | true` panicked (`failed printing to
/// stdout: Broken pipe`) and exited 101.
#[test]
fn output_into_a_closed_pipe_ends_quietly_with_141() {
    let node = Node::init("nas1");
    node.ok(&[
        "appliance",
        "add",
        "nas2",
        "--address",
        "192.0.2.2",
        "--fingerprint",
        &format!("SHA256:{}", "ab".repeat(32)),
    ]);
    let before = node.dump();
    for args in [
        &["appliance", "list", "--json"][..],
        &["appliance", "list"],
        &["id"],
        &["id", "--json"],
        &["pool", "list"],
        &["pool", "list", "--json"],
        &["task", "list"],
        &["task", "list", "--json"],
        &["history", "send"],
        &["history", "receive", "--json"],
        &["status"],
        &["status", "--json"],
        &["init"],
        &["--help"],
        &["--version"],
        &["appliance", "--help"],
    ] {
        let out = into_closed_pipe(&node, args);
        assert_eq!(
            out.status.code(),
            Some(CLOSED_PIPE),
            "ferry {args:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "ferry {args:?} said something: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(node.dump(), before);
}

/// A refusal still reaches stderr when stdout is a closed pipe, with its own exit code.
#[test]
fn errors_still_reach_stderr_when_stdout_is_closed() {
    let node = Node::init("nas1");
    let out = into_closed_pipe(&node, &["pool", "remove", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("ferry: no pool named nope"), "{err}");
}
