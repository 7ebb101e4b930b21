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
        // The loop reads, compresses, then writes. Time the link spent
        // blocking our writes is time it was still busy with earlier chunks:
        // compressing harder costs nothing while that slack lasts, and the
        // smaller stream finishes sooner. No blocking at all means the link
        // keeps up, and compression is on the critical path.
        let next = if w > c / 4 {
            self.level + 1
        } else if w < c / 20 {
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
    fn a_link_that_never_blocks_lowers_it_down_to_the_floor() {
        let mut a = Adapt::new(3, 1, 12);
        assert_eq!(window(&mut a, 10 * MS, Duration::ZERO), Some(2));
        assert_eq!(window(&mut a, 10 * MS, Duration::ZERO), Some(1));
        assert_eq!(window(&mut a, 10 * MS, Duration::ZERO), None, "floored");
    }

    #[test]
    fn a_link_with_slack_behind_slow_reads_still_raises_it() {
        // Pins: with btrfs send itself slow to read, writes blocked less than
        // compression took, and the old rule (blocking > 1.5x compression)
        // kept level 1 on a 100 Mbit link that had room for level 6.
        let mut a = Adapt::new(1, 1, 12);
        assert_eq!(window(&mut a, 3 * MS, 4 * MS), Some(2));
    }

    #[test]
    fn balance_and_incompressible_data_keep_the_level() {
        let mut a = Adapt::new(3, 1, 12);
        // Some blocking, but less than a quarter of the compression time.
        assert_eq!(window(&mut a, 10 * MS, 2 * MS), None);
        for _ in 0..WINDOW {
            assert_eq!(a.record(Duration::ZERO, 10 * MS, false), None);
        }
        assert_eq!(a.level(), 3);
    }
}
