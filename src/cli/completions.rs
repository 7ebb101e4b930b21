//! `ferry completions bash|zsh|fish`: the shell's completion script, generated from
//! the clap definitions (clap_complete), so it never lags behind the commands.

use clap::{Args, ValueEnum};
use clap_complete::Shell as Generator;

/// The shells ferry ships completions for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> Generator {
        match self {
            Shell::Bash => Generator::Bash,
            Shell::Zsh => Generator::Zsh,
            Shell::Fish => Generator::Fish,
        }
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for; the script goes to stdout.
    shell: Shell,
}

/// Writes the completion script for `args.shell` to stdout. `make install` puts
/// each where its shell looks (see the Makefile).
///
/// # Errors
///
/// Writing stdout failed (a closed pipe).
/// Writes the script for `args.shell`, generated from `command` (the whole CLI).
pub fn run(args: CompletionsArgs, mut command: clap::Command) -> anyhow::Result<()> {
    // Generated into memory first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(args.shell.generator(), &mut command, "ferry", &mut script);
    super::output::write_stdout(format_args!("{}", String::from_utf8_lossy(&script)))
}
