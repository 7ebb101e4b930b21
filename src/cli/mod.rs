//! The `ferry` command line: one file per command group, each thin over the library.
//! Errors are `anyhow` here; `BadInput` marks the user's mistakes (exit 2).
// `println!` panics on a closed pipe; everything goes through `output` instead.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod appliance;
mod check;
mod completions;
mod ctx;
mod history;
mod history_restore;
mod init;
mod init_repair;
mod logging;
mod manual;
mod output;
mod own_dirs;
mod pool;
mod receiver;
mod replica;
mod replica_adopt;
mod replica_list;
mod replica_restore;
mod sender;
mod signals;
mod status;
mod task;
mod task_add;
mod task_opts;
mod task_prune;
mod task_run;
mod task_set;
mod usage;
mod values;
mod version;

use output::one_line;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config;

pub use ctx::{BadInput, Ctx, Exit};

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    about = "Scheduled, verified, encrypted btrfs replication between appliances"
)]
pub struct Cli {
    /// Where this appliance keeps its state (database, key, certificate)
    /// [default: the config file's state_dir, else /var/lib/ferry].
    #[arg(long, global = true, env = "FERRY_STATE_DIR")]
    state_dir: Option<PathBuf>,

    /// The configuration file [default: /etc/ferry/ferry.toml if it exists].
    #[arg(long, global = true, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this appliance's identity (TLS key and certificate) and state database.
    Init(init::InitArgs),
    /// Print this appliance's name, uuid and certificate fingerprint.
    Id(init::IdArgs),
    /// Peer appliances this one sends to or receives from.
    #[command(subcommand)]
    Appliance(appliance::ApplianceCommand),
    /// Local btrfs pools that accept replicas from peers.
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Replicas this appliance holds as a receiver.
    #[command(subcommand)]
    Replica(replica::ReplicaCommand),
    /// Replication tasks: one share, sent to one appliance on a schedule.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// What was sent and received, newest first.
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// Replication lag, next runs, failures and transfers in flight.
    Status(status::StatusArgs),
    /// Run the scheduler daemon: every enabled task on its schedule.
    Sender(sender::SenderArgs),
    /// Run the receiver daemon: accept replicas from known appliances into pools.
    Receiver(receiver::ReceiverArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    Completions(completions::CompletionsArgs),
    /// Write the man pages into a directory (`make man`).
    #[command(hide = true)]
    Man(manual::ManArgs),
}

/// The clap definition of the whole command line, with the version filled in:
/// what parsing, completions and man pages all start from.
pub fn command() -> clap::Command {
    Cli::command().version(version::short())
}

/// Runs the CLI and maps the outcome to ferry's exit codes:
/// 0 ok, 1 the operation failed, 2 bad usage or bad input.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = command();
    if version::asked(&args) {
        command = command.long_version(version::long());
    }
    // A monitoring plugin answers UNKNOWN to whatever keeps it from looking.
    let checking = check::requested(&args);
    let cli = match command
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) if checking && e.use_stderr() => {
            return check_unknown("bad usage", &e.render().to_string())
        }
        Err(e) => return usage::usage_error(e, self::command(), &args),
    };
    let config = match config::load_or_default(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) if checking => return check_unknown("bad configuration", &e.to_string()),
        Err(e) => {
            output::write_stderr(&format!("ferry: {e}"));
            return ExitCode::from(2);
        }
    };
    // Daemons log what they do at the configured level. Commands log errors
    // only: what failed is their one `ferry:` line, which a warning logged on
    // the way would only repeat.
    let daemon = matches!(cli.command, Command::Sender(_) | Command::Receiver(_));
    let logging = logging::init(if daemon {
        config.log_level.as_str()
    } else {
        "error"
    });
    let ctx = Ctx {
        state_dir: cli.state_dir.unwrap_or_else(|| config.state_dir.clone()),
        config,
        config_path: cli.config,
        logging,
    };
    let result = absolute_state_dir(&ctx).and_then(|()| match cli.command {
        Command::Init(args) => init::init(&ctx, args),
        Command::Id(args) => init::id(&ctx, args),
        Command::Appliance(cmd) => appliance::run(&ctx, cmd),
        Command::Pool(cmd) => pool::run(&ctx, cmd),
        Command::Replica(cmd) => replica::run(&ctx, cmd),
        Command::Task(cmd) => task::run(&ctx, cmd),
        Command::History(cmd) => history::run(&ctx, cmd),
        Command::Status(args) => status::run(&ctx, args),
        Command::Sender(args) => sender::run(&ctx, args),
        Command::Receiver(args) => receiver::run(&ctx, args),
        Command::Completions(args) => completions::run(args, self::command()),
        Command::Man(args) => manual::run(args, self::command()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.chain().any(|c| c.is::<output::ClosedOutput>()) => {
            ExitCode::from(output::CLOSED_PIPE_EXIT)
        }
        Err(e) if e.downcast_ref::<Exit>().is_some() => {
            ExitCode::from(e.downcast_ref::<Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            output::write_stderr(&format!("ferry: {}", one_line(&e)));
            if e.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `status --check` could not even start: UNKNOWN, with the reason on one line.
fn check_unknown(what: &str, detail: &str) -> ExitCode {
    let detail = detail
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let detail = detail.strip_prefix("error: ").unwrap_or(&detail);
    // A closed stdout leaves nothing to tell; the exit code still says UNKNOWN.
    let _ = output::write_stdout(format_args!(
        "{}",
        check::unknown(&format!("{what}: {detail}")).text
    ));
    ExitCode::from(check::State::Unknown.code())
}

/// One rule for every way to name the state dir (`--state-dir`,
/// `FERRY_STATE_DIR`, the config file's `state_dir`): an absolute path. A
/// relative one would name another directory from each working directory, and
/// a daemon's is whatever systemd gives it.
fn absolute_state_dir(ctx: &Ctx) -> anyhow::Result<()> {
    let dir = &ctx.state_dir;
    if !dir.is_absolute() {
        let shown = dir.display();
        let absolute = std::env::current_dir()
            .map(|cwd| cwd.join(dir).display().to_string())
            .unwrap_or_else(|_| format!("/…/{shown}"));
        return Err(BadInput(format!(
            "state dir {shown} (--state-dir or FERRY_STATE_DIR) is a relative path; give an \
             absolute one, e.g. {absolute}, as the config file's state_dir must be"
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("peer refused: {reason}: {source}")]
    struct Refused {
        reason: String,
        source: std::io::Error,
    }

    #[test]
    fn causes_already_spelled_out_are_not_repeated() {
        let io = std::io::Error::other("broken pipe");
        let e = anyhow::Error::new(Refused {
            reason: "busy".into(),
            source: io,
        })
        .context("task photos failed");
        assert_eq!(
            one_line(&e),
            "task photos failed: peer refused: busy: broken pipe"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }
}
