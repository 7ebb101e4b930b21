//! clap's usage errors as one line: the message with its tip, pointing at the
//! help of the command the user typed (`ferry task add --help`), never just
//! `ferry --help`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Command;

use super::output;

/// Prints `e` as one line (help and version as they are) and returns its exit code.
pub fn usage_error(e: clap::Error, command: Command, args: &[OsString]) -> ExitCode {
    if !e.use_stderr() {
        // --help and --version are not errors; a closed pipe ends them quietly.
        return match e.print() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                ExitCode::from(output::CLOSED_PIPE_EXIT)
            }
            _ => ExitCode::SUCCESS,
        };
    }
    let rendered = e.render().to_string();
    output::write_stderr(&format!(
        "ferry: {} (see '{} --help')",
        message(&rendered),
        help_path(command, args)
    ));
    ExitCode::from(2)
}

/// The first paragraph of clap's rendering (its indented lines, say the
/// missing arguments, belong to it), then any `tip:` paragraphs.
fn message(rendered: &str) -> String {
    let mut parts = Vec::new();
    for (i, paragraph) in rendered.split("\n\n").enumerate() {
        let text = paragraph
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if i == 0 {
            parts.push(text.strip_prefix("error: ").unwrap_or(&text).to_string());
        } else if text.starts_with("tip:") {
            parts.push(text);
        }
    }
    parts.join("; ")
}

/// `ferry task add`: the subcommands named in `args`, walked down the tree.
fn help_path(mut command: Command, args: &[OsString]) -> String {
    command.build();
    let mut path = vec![command.get_name().to_string()];
    let mut current = &command;
    let mut skip_value = false;
    for arg in args.iter().skip(1) {
        let arg = arg.to_string_lossy();
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            // `--state-dir DIR`: the next word is the option's value.
            skip_value = !long.contains('=')
                && current
                    .get_arguments()
                    .find(|a| a.get_long() == Some(long))
                    .is_some_and(|a| a.get_action().takes_values());
            continue;
        }
        if arg.starts_with('-') {
            continue;
        }
        match current.find_subcommand(arg.as_ref()) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                current = sub;
            }
            // A positional value (a name, a path): later words may still be options.
            None if current.has_subcommands() => break,
            None => {}
        }
    }
    path.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Command {
        Command::new("ferry")
            .arg(clap::Arg::new("state-dir").long("state-dir").global(true))
            .subcommand(
                Command::new("task")
                    .subcommand(Command::new("add").arg(clap::Arg::new("name")))
                    .subcommand(Command::new("list")),
            )
    }

    fn path(args: &[&str]) -> String {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        help_path(tree(), &args)
    }

    #[test]
    fn help_points_at_the_command_typed() {
        assert_eq!(
            path(&["ferry", "task", "add", "x", "--keep-source", "0"]),
            "ferry task add"
        );
        assert_eq!(
            path(&["ferry", "--state-dir", "task", "task", "list"]),
            "ferry task list"
        );
        assert_eq!(path(&["ferry", "tasks", "list"]), "ferry");
        assert_eq!(path(&["ferry", "task", "explode"]), "ferry task");
    }

    /// Pins: `ferry tasks list` lost clap's tip that `task` exists.
    #[test]
    fn the_tip_is_kept_whole() {
        let rendered = "error: unrecognized subcommand 'tasks'\n\n  tip: a similar subcommand \
                        exists: 'task'\n\nUsage: ferry [OPTIONS] <COMMAND>\n\nFor more \
                        information, try '--help'.\n";
        assert_eq!(
            message(rendered),
            "unrecognized subcommand 'tasks'; tip: a similar subcommand exists: 'task'"
        );
    }
}
