//! Bandwidth limits as users write them: a rate in bytes per second on the wire
//! (`500KiB`, `10MiB`, `1GiB`, `750kB`, `0` for none), and the daily window a
//! sender-wide cap applies in (`08:00-18:00`, local time).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveTime;

/// Bytes per second on the wire; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Rate(pub u64);

/// Why a rate or a window was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BandwidthError {
    #[error("bandwidth limit {0:?} is not a rate; give bytes per second like 500KiB, 10MiB, 1GiB, 750kB or 0 for none")]
    Rate(String),
    #[error("bandwidth window {0:?} is not a daily window; give HH:MM-HH:MM in local time, like 08:00-18:00")]
    Window(String),
}

impl Rate {
    pub const NONE: Rate = Rate(0);

    pub fn is_limited(self) -> bool {
        self.0 > 0
    }
}

impl FromStr for Rate {
    type Err = BandwidthError;

    /// `NUMBER[UNIT]`: no unit is bytes; `k`/`kB`, `M`/`MB`, `G`/`GB` are powers
    /// of 1000 and `KiB`, `MiB`, `GiB` powers of 1024 (a trailing `/s` is allowed).
    fn from_str(s: &str) -> Result<Rate, BandwidthError> {
        let bad = || BandwidthError::Rate(s.to_owned());
        let t = s.trim();
        let t = t.strip_suffix("/s").unwrap_or(t).trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let unit = unit.trim();
        let factor: u64 = match unit {
            "" | "B" => 1,
            "k" | "K" | "kB" | "KB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "KiB" | "Ki" => 1 << 10,
            "MiB" | "Mi" => 1 << 20,
            "GiB" | "Gi" => 1 << 30,
            _ => return Err(bad()),
        };
        let value: f64 = number.parse().map_err(|_| bad())?;
        if !value.is_finite() || value < 0.0 {
            return Err(bad());
        }
        let bytes = value * factor as f64;
        // Past 1 TB/s no link needs a limit; refuse rather than wrap.
        if bytes > 1e12 {
            return Err(bad());
        }
        Ok(Rate(bytes.round() as u64))
    }
}

impl fmt::Display for Rate {
    /// `none`, or the rate in the largest binary unit that keeps it exact-ish.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b == 0 {
            return f.write_str("none");
        }
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= size && b % (size / 1024).max(1) == 0 {
                let v = b as f64 / size as f64;
                return if v.fract() == 0.0 {
                    write!(f, "{v:.0}{unit}/s")
                } else {
                    write!(f, "{v:.1}{unit}/s")
                };
            }
        }
        write!(f, "{b}B/s")
    }
}

/// A daily window in local time; it may wrap past midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl Window {
    /// Whether `t` (a local time of day) falls in the window; `from == to` is
    /// the whole day.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.from <= self.to {
            self.from == self.to || (self.from <= t && t < self.to)
        } else {
            t >= self.from || t < self.to
        }
    }
}

impl FromStr for Window {
    type Err = BandwidthError;

    fn from_str(s: &str) -> Result<Window, BandwidthError> {
        let bad = || BandwidthError::Window(s.to_owned());
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let time = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
        Ok(Window {
            from: time(a)?,
            to: time(b)?,
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.from.format("%H:%M"),
            self.to.format("%H:%M")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_users_write_them() {
        for (text, bytes) in [
            ("0", 0),
            ("500KiB", 512_000),
            ("10MiB", 10 << 20),
            ("1GiB", 1 << 30),
            ("750kB", 750_000),
            ("2MB/s", 2_000_000),
            ("1.5MiB", 1_572_864),
            ("4096", 4096),
        ] {
            assert_eq!(text.parse::<Rate>(), Ok(Rate(bytes)), "{text}");
        }
        for bad in ["", "fast", "-5MiB", "10 mbit", "1e20", "5Mb"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!(Rate(10 << 20).to_string(), "10MiB/s");
        assert_eq!(Rate(0).to_string(), "none");
    }

    #[test]
    fn windows_may_wrap_past_midnight() {
        let day: Window = "08:00-18:00".parse().expect("window");
        let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
        assert!(day.contains(at(8, 0)) && day.contains(at(17, 59)));
        assert!(!day.contains(at(18, 0)) && !day.contains(at(7, 59)));
        let night: Window = "22:00-06:00".parse().expect("window");
        assert!(night.contains(at(23, 0)) && night.contains(at(5, 0)));
        assert!(!night.contains(at(12, 0)));
        assert!("8-18".parse::<Window>().is_err());
        assert_eq!(day.to_string(), "08:00-18:00");
    }
}
