//! What `make install` ships besides the daemons: `--version`, shell completions
//! (checked by the shells), man pages (rendered by `man -l`), and `make install`
//! / `make uninstall` into a DESTDIR removing exactly what was installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The command groups: each has its own page.
const GROUPS: [&str; 10] = [
    "init",
    "id",
    "appliance",
    "pool",
    "task",
    "history",
    "status",
    "sender",
    "receiver",
    "completions",
];

fn ferry(args: &[&str]) -> Output {
    Command::new(FERRY)
        .args(args)
        .env("FERRY_CONFIG", "/dev/null")
        .output()
        .expect("run ferry")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tool the test needs; missing is a failure naming the package, never a skip.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is missing: `apt-get install {package}` (make test does)"
    );
}

#[test]
fn version_names_the_commit_the_protocol_and_the_features() {
    let long = ok(ferry(&["--version"]), "ferry --version");
    let lines: Vec<&str> = long.lines().collect();
    let commit = Command::new("git")
        .args(["-C", REPO, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_string(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        );
    assert_eq!(
        lines.first().copied(),
        Some(format!("ferry {} (commit {commit})", env!("CARGO_PKG_VERSION")).as_str()),
        "{long}"
    );
    assert_eq!(
        lines.get(1).copied(),
        Some(format!("protocol: {}", ferry::wire::PROTOCOL).as_str())
    );
    assert_eq!(
        lines.get(2).copied(),
        Some(format!("features: {}", ferry::capabilities::offered()).as_str())
    );
    let short = ok(ferry(&["-V"]), "ferry -V");
    assert_eq!(short.trim_end(), lines[0]);
}

/// The README's `ferry --version` example reads as the binary prints it: one
/// line each, in order, and every feature this build knows (an appliance with
/// a current kernel and btrfs-progs offers them all); it once said
/// `features: none`.
#[test]
fn the_readme_version_example_is_what_version_prints() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).expect("README");
    let example: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("ferry --version "))
        .skip(1)
        .map_while(|l| l.trim_start().strip_prefix("#   "))
        .collect();
    let all = ferry::wire::Features::new(ferry::wire::Feature::ALL.iter().copied());
    let long = ok(ferry(&["--version"]), "ferry --version");
    let printed: Vec<&str> = long.lines().collect();
    assert_eq!(example.len(), printed.len(), "{example:?} vs {printed:?}");
    let version = format!("ferry {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(example[0].starts_with(&version) && example[0].ends_with(')'));
    assert_eq!(example[1], printed[1]);
    assert_eq!(example[2], format!("features: {all}"));
    // What this machine offers is a part of that, in the same order.
    let offered = ferry::capabilities::offered().to_string();
    let names: Vec<&str> = example[2]
        .trim_start_matches("features: ")
        .split(", ")
        .collect();
    let kept: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| offered.split(", ").any(|o| o == *n))
        .collect();
    assert_eq!(kept.join(", "), offered, "{offered}");
}

#[test]
fn completions_are_scripts_their_shells_accept() {
    require("bash", "bash");
    let dir = tempfile::tempdir().expect("temp dir");
    let bash = dir.path().join("ferry.bash");
    std::fs::write(
        &bash,
        ok(ferry(&["completions", "bash"]), "completions bash"),
    )
    .expect("write");
    ok(
        Command::new("bash")
            .arg("-n")
            .arg(&bash)
            .output()
            .expect("bash -n"),
        "bash -n on the completion script",
    );
    // Sourced, it registers a completion for ferry that offers the subcommands.
    let script = format!(
        "source {}; complete -p ferry >/dev/null || exit 1; \
         COMP_WORDS=(ferry ta); COMP_CWORD=1; COMP_LINE='ferry ta'; COMP_POINT=8; \
         _ferry ferry ta ferry; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bash.display()
    );
    let offered = ok(
        Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("bash"),
        "completing `ferry ta`",
    );
    assert_eq!(offered.trim(), "task", "{offered}");
    for shell in ["zsh", "fish"] {
        let text = ok(ferry(&["completions", shell]), shell);
        for group in GROUPS {
            assert!(text.contains(group), "{shell} completions lack {group}");
        }
    }
    let refused = ferry(&["completions", "tcsh"]);
    assert_eq!(refused.status.code(), Some(2));
}

/// Renders `page` as a reader would; Err carries groff's complaints.
fn render(page: &Path) -> Result<String, String> {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .output()
        .map_err(|e| format!("man -l {}: {e}", page.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(format!(
            "man -l {}: {}: {stderr}",
            page.display(),
            out.status
        ));
    }
    Ok(plain(&String::from_utf8_lossy(&out.stdout)))
}

/// Text without man's overstriking (`N\x08N` bold, `_\x08x` underline).
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    // After a backspace the next char replaces the popped one; nothing else to undo.
    out.into_iter().collect()
}

fn pages_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read man dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn man_pages_render_one_per_command_group_and_more() {
    require("man", "man-db");
    require("groff", "groff-base");
    let dir = tempfile::tempdir().expect("temp dir");
    ok(ferry(&["man", &dir.path().to_string_lossy()]), "ferry man");
    let pages = pages_in(dir.path());
    assert!(pages.contains("ferry.1"), "{pages:?}");
    for group in GROUPS {
        assert!(
            pages.contains(&format!("ferry-{group}.1")),
            "no page for {group}: {pages:?}"
        );
    }
    assert!(pages.contains("ferry-task-add.1"), "{pages:?}");
    assert!(
        !pages.contains("ferry-man.1"),
        "the hidden generator has no page"
    );
    for page in &pages {
        let text = render(&dir.path().join(page)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{page}:\n{text}"
        );
    }
    let top = render(&dir.path().join("ferry.1")).expect("ferry.1");
    for section in ["EXIT STATUS", "ENVIRONMENT", "FILES", "ferry-task(1)"] {
        assert!(top.contains(section), "ferry.1 lacks {section}:\n{top}");
    }
    let add = render(&dir.path().join("ferry-task-add.1")).expect("task add");
    assert!(add.contains("--frequency"), "{add}");
}

/// Every file under `root`, relative to it.
fn files(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    out
}

fn make(target: &str, destdir: &Path, man_out: &Path) -> Output {
    Command::new("make")
        .args(["-C", REPO, "--no-print-directory", target])
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg(format!("FERRY_BIN={FERRY}"))
        .arg(format!("MAN_OUT={}", man_out.display()))
        .output()
        .expect("run make")
}

#[test]
fn make_install_then_uninstall_into_a_destdir_removes_exactly_what_it_installed() {
    require("make", "make");
    require("man", "man-db");
    let dest = tempfile::tempdir().expect("temp dir");
    let man_out = tempfile::tempdir().expect("temp dir");
    let root = dest.path();
    // What an appliance has that is not ferry's to remove: its state and settings.
    let keep = [
        "var/lib/ferry/state.db",
        "etc/ferry/ferry.toml",
        "usr/local/share/man/man1/other.1",
    ];
    for k in keep {
        let path = root.join(k);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "not ferry's\n").expect("write");
    }
    let before = files(root);
    ok(make("install", root, man_out.path()), "make install");
    let installed: BTreeSet<PathBuf> = files(root).difference(&before).cloned().collect();
    for expected in [
        "usr/local/bin/ferry",
        "usr/local/lib/systemd/system/ferry-sender.service",
        "usr/local/lib/systemd/system/ferry-receiver.service",
        "usr/local/share/man/man1/ferry.1",
        "usr/local/share/man/man1/ferry-task.1",
        "usr/local/share/bash-completion/completions/ferry",
        "usr/local/share/zsh/site-functions/_ferry",
        "usr/local/share/fish/vendor_completions.d/ferry.fish",
        "etc/ferry/ferry.toml.sample",
    ] {
        assert!(
            installed.contains(Path::new(expected)),
            "{expected} not installed: {installed:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.join("etc/ferry/ferry.toml")).expect("config"),
        "not ferry's\n",
        "install overwrote the admin's ferry.toml"
    );
    render(&root.join("usr/local/share/man/man1/ferry-status.1")).expect("installed page");
    ok(
        Command::new("bash")
            .arg("-n")
            .arg(root.join("usr/local/share/bash-completion/completions/ferry"))
            .output()
            .expect("bash -n"),
        "bash -n on the installed completions",
    );
    ok(make("uninstall", root, man_out.path()), "make uninstall");
    assert_eq!(files(root), before, "uninstall left or removed other files");
    for k in keep {
        assert_eq!(
            std::fs::read_to_string(root.join(k)).expect("kept"),
            "not ferry's\n"
        );
    }
}
