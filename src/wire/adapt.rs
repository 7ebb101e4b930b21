//! Adaptive zstd level for the data stream: climb while the network is the
//! bottleneck (spare CPU buys a smaller stream), step down while compression is.

use std::time::Duration;

/// Chunks per decision: enough to average out one slow write or one odd chunk.
const WINDOW: u32 = 8;

/// Tracks what the last chunks cost and picks the next level.
#[derive(Debug, Clone)]
pub struct Adapt {
    level: i32,
    min: i32,
    max: i32,
    compressing: Duration,
    writing: Duration,
    chunks: u32,
    compressed: u32,
}

impl Adapt {
    pub fn new(start: i32, min: i32, max: i32) -> Self {
        Adapt {
            level: start.clamp(min, max),
            min,
            max,
            compressing: Duration::ZERO,
            writing: Duration::ZERO,
            chunks: 0,
            compressed: 0,
        }
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Records one chunk: how long compressing it took (zero when it was sent
    /// raw) and how long the network took to accept it. Returns the new level
    /// when it changes.
    pub fn record(
        &mut self,
        compressing: Duration,
        writing: Duration,
        compressed: bool,
    ) -> Option<i32> {
        self.compressing += compressing;
        self.writing += writing;
        self.chunks += 1;
        self.compressed += u32::from(compressed);
        if self.chunks < WINDOW {
            return None;
        }
        let (c, w, any) = (self.compressing, self.writing, self.compressed > 0);
        self.compressing = Duration::ZERO;
        self.writing = Duration::ZERO;
        self.chunks = 0;
        self.compressed = 0;
        // Media that does not compress says nothing about the level.
        if !any {
            return None;
        }
        // Climb only while the link is clearly the bottleneck (writes block
        // longer than compressing took, by half again); step down as soon as
        // compressing costs more than the link's waits. A looser climb (any
        // blocking beyond a quarter of the compression time) measured slower
        // on the 100 Mbit bench: the serial loop puts compression on the
        // critical path. See README "Performance", run 2.
        let next = if w > c + c / 2 {
            self.level + 1
        } else if c > w {
            self.level - 1
        } else {
            self.level
        }
        .clamp(self.min, self.max);
        (next != self.level).then(|| {
            self.level = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn window(a: &mut Adapt, compressing: Duration, writing: Duration) -> Option<i32> {
        (0..WINDOW).fold(None, |_, _| a.record(compressing, writing, true))
    }

    #[test]
    fn a_slow_network_raises_the_level_up_to_the_cap() {
        let mut a = Adapt::new(3, 1, 5);
        assert_eq!(window(&mut a, MS, 10 * MS), Some(4));
        assert_eq!(window(&mut a, MS, 10 * MS), Some(5));
        assert_eq!(window(&mut a, MS, 10 * MS), None, "capped");
    }

    #[test]
    fn slow_compression_lowers_it_down_to_the_floor() {
        let mut a = Adapt::new(3, 1, 12);
        assert_eq!(window(&mut a, 10 * MS, MS), Some(2));
        assert_eq!(window(&mut a, 10 * MS, MS), Some(1));
        assert_eq!(window(&mut a, 10 * MS, MS), None, "floored");
    }

    #[test]
    fn some_blocking_is_not_enough_to_climb() {
        // Pins the measured choice: blocking a little longer than compressing
        // keeps the level (climbing on it cost 3% on the 100 Mbit bench).
        let mut a = Adapt::new(3, 1, 12);
        assert_eq!(window(&mut a, 4 * MS, 5 * MS), None);
    }

    #[test]
    fn balance_and_incompressible_data_keep_the_level() {
        let mut a = Adapt::new(3, 1, 12);
        assert_eq!(window(&mut a, 10 * MS, 12 * MS), None);
        for _ in 0..WINDOW {
            assert_eq!(a.record(Duration::ZERO, 10 * MS, false), None);
        }
        assert_eq!(a.level(), 3);
    }
}
