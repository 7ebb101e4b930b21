//! How the CLI prints: aligned tables, human sizes, rates and times, and `--json`.
//! Every line goes through [`write_stdout`], so a closed pipe ends a command quietly.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Standard output was closed before everything was written (`ferry … | head -1`).
/// Not a failure to report: the CLI exits [`CLOSED_PIPE_EXIT`] without a word.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed before everything was written")]
pub struct ClosedOutput;

/// The exit code after [`ClosedOutput`]: 128 + SIGPIPE, what a shell reports
/// for a Unix tool that a closed pipe ended.
pub const CLOSED_PIPE_EXIT: u8 = 141;

/// Writes `args` to stdout.
///
/// # Errors
///
/// [`ClosedOutput`] when the reader went away (EPIPE); any other write error
/// (a full disk behind a redirection, say) as it is, with what was written to.
pub fn write_stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(ClosedOutput.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// `println!` for the CLI: a closed stdout returns [`ClosedOutput`] with `?`
/// instead of panicking as `println!` does.
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}
pub(crate) use outln;

/// Writes one line to stderr; a closed stderr is ignored, since there is
/// nowhere left to say anything.
pub fn write_stderr(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Prints `value` as pretty JSON: the stable, documented form for scripts.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table whose columns are padded to their widest cell. The last column is
/// not padded, so long error texts do not push trailing spaces.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row. A cell is one line whatever it holds (a btrfs error
    /// spans several): its whitespace runs are folded into single spaces.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| one_line_cell(&c)).collect());
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) -> anyhow::Result<()> {
        write_stdout(format_args!("{}", self.render()))
    }
}

fn one_line_cell(cell: &str) -> String {
    if !cell.contains(['\n', '\r', '\t']) {
        return cell.to_string();
    }
    cell.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints `key: value` lines with the keys aligned (for `show` commands).
pub fn print_fields(fields: &[(&str, String)]) -> anyhow::Result<()> {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in fields {
        outln!("{key:<width$}  {}", one_line_cell(value));
    }
    Ok(())
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A transfer rate, or `-` when the time is too short to mean anything.
pub fn rate(bytes_moved: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 0.001 {
        return "-".to_string();
    }
    format!("{}/s", bytes((bytes_moved as f64 / secs) as u64))
}

/// A short elapsed time: `850ms`, `12s`, `3m05s`, `2h01m`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// An estimate as a person reads it, marked as one: `~42% of ~1.2 GiB, ETA
/// ~1m10s (estimate)`; the ETA is left out while there is none.
pub fn estimate_text(e: &crate::estimate::Estimate) -> String {
    let eta = e
        .eta
        .map(|d| format!(", ETA ~{}", elapsed(d)))
        .unwrap_or_default();
    format!(
        "~{}% of ~{}{eta} (estimate)",
        e.percent,
        bytes(e.total_bytes)
    )
}

/// A point in time as the tables show it: local time (the system's zone, or
/// `TZ`), to the second, with the zone's abbreviation. JSON keeps RFC 3339 UTC.
pub fn time(t: DateTime<Utc>) -> String {
    crate::schedule::local_time(t)
}

/// The time between two points, or from `start` to now for a running row.
pub fn span(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Duration {
    (end.unwrap_or_else(Utc::now) - start)
        .to_std()
        .unwrap_or_default()
}

/// A task's stream compression as `show` and `add` describe it: `off`,
/// `zstd level 5`, or `adaptive zstd (starts at level 3)`.
pub fn compression(level: i32, auto: bool) -> String {
    match (level, auto) {
        (0, _) => "off".to_string(),
        (_, true) => format!("adaptive zstd (starts at level {level})"),
        (_, false) => format!("zstd level {level}"),
    }
}

pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The error and its causes as one line, "what failed: why". Our errors already
/// spell out their cause (history rows store that one string), so a cause whose
/// text is already in the line is not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        // Whatever a library put in its message, the line stays one line.
        let text = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_and_times() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(rate(10 << 20, Duration::from_secs(2)), "5.0 MiB/s");
        assert_eq!(rate(10, Duration::ZERO), "-");
        assert_eq!(elapsed(Duration::from_millis(850)), "850ms");
        assert_eq!(elapsed(Duration::from_secs(185)), "3m05s");
        assert_eq!(elapsed(Duration::from_secs(7260)), "2h01m");
    }

    #[test]
    fn tables_align_all_but_the_last_column() {
        let mut t = Table::new(&["NAME", "STATUS", "ERROR"]);
        t.row(vec!["a".into(), "failed".into(), "long reason".into()]);
        t.row(vec!["photos".into(), "ok".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NAME    STATUS  ERROR\na       failed  long reason\nphotos  ok\n"
        );
    }

    /// Pins: a btrfs error of several lines broke a history table into pieces.
    #[test]
    fn a_cell_of_several_lines_is_one_line() {
        let mut t = Table::new(&["ID", "ERROR"]);
        t.row(vec![
            "1".into(),
            "btrfs receive exited 1: ERROR: a\n  ERROR: b\n".into(),
        ]);
        assert_eq!(
            t.render(),
            "ID  ERROR\n1   btrfs receive exited 1: ERROR: a ERROR: b\n"
        );
    }
}
