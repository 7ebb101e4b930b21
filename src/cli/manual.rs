//! `ferry man DIR` (hidden; `make man` runs it): man pages from the clap definitions
//! (clap_mangen): `ferry.1`, one per command group, one per command in a group.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use clap_mangen::roff::{roman, Roff};

use super::version;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory the pages are written to (created if missing).
    dir: PathBuf,
}

/// The sections `ferry.1` has beyond what clap knows: (heading, paragraphs).
const FERRY_SECTIONS: &[(&str, &[&str])] = &[
    (
        "EXIT STATUS",
        &[
            "0: done. 1: the operation failed. 2: bad usage or bad input; one line on stderr \
             names the problem and the fix, and nothing was changed.",
            "ferry status --check alone uses the monitoring plugin codes instead: 0 OK, \
             1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            "FERRY_STATE_DIR: the state directory (default /var/lib/ferry).",
            "FERRY_CONFIG: the configuration file (default /etc/ferry/ferry.toml).",
            "FERRY_LOG: the daemons' log filter, e.g. debug or ferry=trace.",
            "NO_COLOR: no colors in any output.",
            "JOURNAL_STREAM: set by systemd; logs then go to the journal with priorities.",
        ],
    ),
    (
        "FILES",
        &[
            "/etc/ferry/ferry.toml: the daemons' settings (ferry.toml.sample lists them all).",
            "/var/lib/ferry/state.db: tasks, peers, pools and history.",
            "/var/lib/ferry/key.pem, cert.pem: this appliance's TLS identity.",
        ],
    ),
];

fn extra_sections() -> Roff {
    let mut roff = Roff::default();
    for (heading, paragraphs) in FERRY_SECTIONS {
        roff.control("SH", [*heading]);
        for p in *paragraphs {
            roff.control("PP", []).text([roman(*p)]);
        }
    }
    roff
}

/// Writes the pages of `command` (the whole CLI) into `args.dir`.
pub fn run(args: ManArgs, command: clap::Command) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let top = command.disable_help_subcommand(true);
    let mut written = 0;
    write_pages(top, &args.dir, &mut written)?;
    super::output::outln!("{written} man pages in {}", args.dir.display());
    Ok(())
}

/// Writes the page of `cmd`, then of each visible subcommand, depth first. Every
/// page is `ferry-<group>[-<command>].1`, the names clap_mangen's SUBCOMMANDS
/// sections refer to.
fn write_pages(mut cmd: clap::Command, dir: &Path, written: &mut usize) -> anyhow::Result<()> {
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        write_pages(sub, dir, written)?;
    }
    let top = cmd.get_name() == "ferry";
    let page = clap_mangen::Man::new(cmd)
        .source(format!("ferry {}", version::VERSION))
        .manual("ferry manual");
    let mut text = Vec::new();
    page.render(&mut text)?;
    if top {
        text.extend(extra_sections().to_roff().into_bytes());
    }
    let path = dir.join(page.get_filename());
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    *written += 1;
    Ok(())
}
