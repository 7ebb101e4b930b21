//! The real binary's output: into a closed pipe it ends quietly, with the exit
//! code a shell reports for a tool ended by SIGPIPE; logs colored only on a
//! terminal and without NO_COLOR.

use std::process::{Command, Stdio};

use crate::common::ferry::Node;
use crate::common::pair::Pair;

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

/// `FERRY_LOG=info ferry task run photos` with stderr on a terminal (a pty
/// from `script`) or a pipe, NO_COLOR as given; what stderr got.
async fn logged(pair: &Pair, tty: bool, no_color: Option<&str>) -> String {
    let ferry = env!("CARGO_BIN_EXE_ferry");
    let mut cmd = if tty {
        let mut cmd = tokio::process::Command::new("script");
        cmd.args(["--quiet", "--return", "--command"])
            .arg(format!("{ferry} task run photos"))
            .arg("/dev/null");
        cmd
    } else {
        let mut cmd = tokio::process::Command::new(ferry);
        cmd.args(["task", "run", "photos"]);
        cmd
    };
    cmd.env("FERRY_STATE_DIR", &pair.nas1.state)
        .env("FERRY_CONFIG", "/dev/null")
        .env("FERRY_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().await.expect("run");
    assert!(out.status.success(), "{out:?}");
    // On the pty, stdout and stderr are one stream, which `script` copies.
    let shown = if tty { out.stdout } else { out.stderr };
    let shown = String::from_utf8_lossy(&shown).into_owned();
    assert!(
        shown.contains("INFO") && shown.contains("ferry::sender::job"),
        "no log lines: {shown:?}"
    );
    shown
}

/// Pins: log lines carry ANSI colors only on a terminal, and never when
/// NO_COLOR is set to something (an empty NO_COLOR is unset, as no-color.org says).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_colored_only_on_a_terminal_without_no_color() {
    let pair = Pair::new(&[]).await;
    let colored = |s: &str| s.contains("\x1b[");
    let piped = logged(&pair, false, None).await;
    assert!(!colored(&piped), "colors into a pipe: {piped:?}");
    let tty = logged(&pair, true, None).await;
    assert!(colored(&tty), "no colors on a terminal: {tty:?}");
    let no_color = logged(&pair, true, Some("1")).await;
    assert!(!colored(&no_color), "colors despite NO_COLOR: {no_color:?}");
    let empty = logged(&pair, true, Some("")).await;
    assert!(
        colored(&empty),
        "an empty NO_COLOR turned colors off: {empty:?}"
    );
}
