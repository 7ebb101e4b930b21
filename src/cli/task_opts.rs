//! The task settings `task add` and `task set` share: one clap option set,
//! parsed and validated by the same code, applied onto a task's settings. A
//! new setting is a field here and a line in [`TaskOptions::apply`].

use clap::Args;

use super::ctx::bad_input;
use super::values;
use crate::bandwidth::Rate;
use crate::retention::Grid;
use crate::schedule::Schedule;
use crate::store::{SendCompressed, TaskHooks, TaskSettings};

/// What a new task gets for each setting `task add` was not given.
pub const DEFAULT_KEEP_SOURCE: u32 = 3;
pub const DEFAULT_KEEP_TARGET: u32 = 5;
pub const DEFAULT_PRESERVE_SOURCE: &str = "none";
pub const DEFAULT_PRESERVE_TARGET: &str = "24h 7d 4w 12m";
/// Where an adaptive stream starts: zstd's own default.
const AUTO_START: i32 = 3;

/// The settable options. Each is optional: `task add` fills what is missing
/// with the defaults above, `task set` leaves it as it was.
#[derive(Debug, Args, Default)]
pub struct TaskOptions {
    /// How often: seconds (300), a duration (5m, 1h) or a cron expression; at
    /// least every 60s. Required by `task add`.
    #[arg(long, allow_hyphen_values = true, value_parser = values::frequency)]
    frequency: Option<String>,
    /// The IANA time zone a cron --frequency is evaluated in, and retention
    /// periods are counted in (Europe/Berlin); `system` for the system's
    /// [add: the system's zone].
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// Override the target's meta port for this task (`default`: the appliance's).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_port)]
    meta_port: Option<Port>,
    /// Override the target's data port for this task (`default`: the appliance's).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_port)]
    data_port: Option<Port>,
    /// Always keep the newest N snapshots on this appliance [add: 3].
    #[arg(long, allow_negative_numbers = true, value_parser = values::count)]
    keep_source: Option<u32>,
    /// Always keep the newest N replicas on the target [add: 5].
    #[arg(long, allow_negative_numbers = true, value_parser = values::count)]
    keep_target: Option<u32>,
    /// Retention grid on this appliance: keep the oldest snapshot of each of the
    /// last N hours/days/weeks/months/years, e.g. '24h 7d', or none [add: none].
    #[arg(long, value_name = "GRID", value_parser = parse_grid)]
    preserve_source: Option<Grid>,
    /// Retention grid asked of the target, e.g. '24h 7d 4w 12m 2y', or none
    /// [add: '24h 7d 4w 12m'].
    #[arg(long, value_name = "GRID", value_parser = parse_grid)]
    preserve_target: Option<Grid>,
    /// Stream compression: `auto` (zstd whose level follows the bottleneck:
    /// higher on a slow link, lower on a fast one), a fixed zstd level 1-19,
    /// or 0 for none [add: auto].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_compress)]
    compress: Option<Compress>,
    /// Bandwidth limit on the wire, bytes per second: 500KiB, 10MiB, 1GiB
    /// (or kB, MB, GB); 0 for none. `sender.bwlimit` caps all tasks together
    /// [add: 0].
    #[arg(long, value_name = "RATE")]
    bwlimit: Option<Rate>,
    /// Whether version 2 send streams carry extents the share's filesystem
    /// compressed as they are (`btrfs send --compressed-data`): `auto` where
    /// the filesystem compresses, `yes`, or `no` [add: auto].
    #[arg(long, value_enum)]
    send_compressed: Option<SendCompressedArg>,
    /// Take no snapshot when the share has not changed since the last one the
    /// target confirmed: on or off [add: on].
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    skip_unchanged: Option<bool>,
    /// Command (/bin/sh -c) run before each snapshot; if it fails, the run
    /// fails and no snapshot is taken. '' for none, overriding the config.
    #[arg(long, value_name = "CMD")]
    pre_snapshot: Option<String>,
    /// Command run right after each snapshot attempt, even a failed one (thaw
    /// what pre-snapshot froze). '' for none.
    #[arg(long, value_name = "CMD")]
    post_snapshot: Option<String>,
    /// Command run after a run the target confirmed (or found unchanged). '' for none.
    #[arg(long, value_name = "CMD")]
    on_success: Option<String>,
    /// Command run after a failed run. '' for none.
    #[arg(long, value_name = "CMD")]
    on_failure: Option<String>,
}

impl TaskOptions {
    /// The settings of a new task: these options over the defaults.
    ///
    /// # Errors
    ///
    /// `BadInput` when `--frequency` is missing or a value is refused.
    pub fn for_new_task(&self) -> anyhow::Result<TaskSettings> {
        let Some(frequency) = &self.frequency else {
            bad_input!(
                "task add needs --frequency: seconds (300), a duration (5m) or a cron expression"
            );
        };
        let mut settings = TaskSettings {
            frequency: frequency.clone(),
            timezone: None,
            meta_port: None,
            data_port: None,
            keep_source: DEFAULT_KEEP_SOURCE,
            keep_target: DEFAULT_KEEP_TARGET,
            preserve_source: DEFAULT_PRESERVE_SOURCE.to_string(),
            preserve_target: DEFAULT_PRESERVE_TARGET.to_string(),
            compress: AUTO_START,
            compress_auto: true,
            bwlimit: 0,
            skip_unchanged: true,
            hooks: TaskHooks::default(),
            send_compressed: SendCompressed::Auto,
        };
        self.apply(&mut settings)?;
        Ok(settings)
    }

    /// Whether any option was given (`task set` with none changes nothing).
    pub fn is_empty(&self) -> bool {
        let TaskOptions {
            frequency,
            timezone,
            meta_port,
            data_port,
            keep_source,
            keep_target,
            preserve_source,
            preserve_target,
            compress,
            bwlimit,
            send_compressed,
            skip_unchanged,
            pre_snapshot,
            post_snapshot,
            on_success,
            on_failure,
        } = self;
        frequency.is_none()
            && timezone.is_none()
            && meta_port.is_none()
            && data_port.is_none()
            && keep_source.is_none()
            && keep_target.is_none()
            && preserve_source.is_none()
            && preserve_target.is_none()
            && compress.is_none()
            && bwlimit.is_none()
            && send_compressed.is_none()
            && skip_unchanged.is_none()
            && pre_snapshot.is_none()
            && post_snapshot.is_none()
            && on_success.is_none()
            && on_failure.is_none()
    }

    /// Writes the given options over `s`, validating each; nothing is
    /// written anywhere else.
    ///
    /// # Errors
    ///
    /// `BadInput` naming the option and the fix.
    pub fn apply(&self, s: &mut TaskSettings) -> anyhow::Result<()> {
        if self.frequency.is_some() || self.timezone.is_some() {
            // The zone is checked with the schedule it applies to (a zone on
            // an interval is refused), by the code `task add` always used.
            let frequency = self.frequency.as_deref().unwrap_or(&s.frequency);
            let zone = match self.timezone.as_deref() {
                Some("system") => None,
                Some(z) => Some(z),
                None => s.timezone.as_deref(),
            };
            let schedule = match Schedule::parse_in(frequency, zone) {
                Ok(schedule) => schedule,
                Err(e) => bad_input!("{e}"),
            };
            s.frequency = schedule.canonical();
            s.timezone = schedule.timezone();
        }
        set(&mut s.meta_port, self.meta_port.map(|p| p.0));
        set(&mut s.data_port, self.data_port.map(|p| p.0));
        set(&mut s.keep_source, self.keep_source);
        set(&mut s.keep_target, self.keep_target);
        set(
            &mut s.preserve_source,
            self.preserve_source.as_ref().map(Grid::to_string),
        );
        set(
            &mut s.preserve_target,
            self.preserve_target.as_ref().map(Grid::to_string),
        );
        if let Some(c) = self.compress {
            (s.compress, s.compress_auto) = (c.level, c.auto);
        }
        set(&mut s.bwlimit, self.bwlimit.map(|r| r.0));
        set(&mut s.send_compressed, self.send_compressed.map(Into::into));
        set(&mut s.skip_unchanged, self.skip_unchanged);
        for (hook, given) in [
            (&mut s.hooks.pre_snapshot, &self.pre_snapshot),
            (&mut s.hooks.post_snapshot, &self.post_snapshot),
            (&mut s.hooks.on_success, &self.on_success),
            (&mut s.hooks.on_failure, &self.on_failure),
        ] {
            if let Some(cmd) = given {
                *hook = Some(cmd.trim().to_string());
            }
        }
        Ok(())
    }
}

fn set<T>(field: &mut T, given: Option<T>) {
    if let Some(value) = given {
        *field = value;
    }
}

/// A port override: `None` is the appliance's port.
#[derive(Debug, Clone, Copy)]
pub struct Port(Option<u16>);

fn parse_port(text: &str) -> Result<Port, String> {
    if text == "default" {
        return Ok(Port(None));
    }
    match text.parse::<u16>() {
        Ok(p @ 1..) => Ok(Port(Some(p))),
        _ => Err("give a port 1-65535, or `default` for the appliance's".to_string()),
    }
}

fn parse_grid(text: &str) -> Result<Grid, String> {
    text.parse()
        .map_err(|e: crate::retention::GridError| e.to_string())
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err("give on or off".to_string()),
    }
}

/// What `--compress` asked for.
#[derive(Debug, Clone, Copy)]
pub struct Compress {
    level: i32,
    auto: bool,
}

/// What `--compress` accepts, said when it got something else.
#[derive(Debug, thiserror::Error)]
#[error("give auto, a zstd level 1-19, or 0 for no compression")]
struct BadCompress;

fn parse_compress(text: &str) -> Result<Compress, BadCompress> {
    if text == "auto" {
        return Ok(Compress {
            level: AUTO_START,
            auto: true,
        });
    }
    match text.parse::<i32>() {
        Ok(level @ 0..=19) => Ok(Compress { level, auto: false }),
        _ => Err(BadCompress),
    }
}

/// `--send-compressed`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SendCompressedArg {
    Auto,
    Yes,
    No,
}

impl From<SendCompressedArg> for SendCompressed {
    fn from(a: SendCompressedArg) -> Self {
        match a {
            SendCompressedArg::Auto => SendCompressed::Auto,
            SendCompressedArg::Yes => SendCompressed::Yes,
            SendCompressedArg::No => SendCompressed::No,
        }
    }
}
