//! Adaptive zstd level for the data stream: climb while the network is the
//! bottleneck (spare CPU buys a smaller stream), step down while compression is.
//!
//! The signal is the encoder thread's wait for queue space: with the network
//! the bottleneck, the queue stays full and every chunk waits; with
//! compression the bottleneck, the queue is empty and nothing waits. Its wait
//! for input tells a third case apart: `btrfs send` slower than both (many
//! small files), where the level changes nothing and is left alone.

use std::time::Duration;

/// Chunks per decision: enough to average out one slow write or one odd chunk.
const WINDOW: u32 = 8;

/// Windows to wait before trying again a level that was just left for being
/// too slow: each change ends a zstd frame, which costs ratio.
const COOLDOWN: u32 = 8;

/// Where one chunk's time went, in the encoder thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Waiting for input.
    pub reading: Duration,
    pub compressing: Duration,
    /// Waiting for the network to take the chunk (queue full).
    pub waiting: Duration,
}

/// Tracks what the last chunks cost and picks the next level.
#[derive(Debug, Clone)]
pub struct Adapt {
    level: i32,
    min: i32,
    max: i32,
    compressing: Duration,
    waiting: Duration,
    reading: Duration,
    chunks: u32,
    compressed: u32,
    /// A level found too slow, and for how many more windows to avoid it.
    too_slow: Option<(i32, u32)>,
}

impl Adapt {
    pub fn new(start: i32, min: i32, max: i32) -> Self {
        Adapt {
            level: start.clamp(min, max),
            min,
            max,
            compressing: Duration::ZERO,
            waiting: Duration::ZERO,
            reading: Duration::ZERO,
            chunks: 0,
            compressed: 0,
            too_slow: None,
        }
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Records one chunk: how long reading it took, how long compressing it
    /// took (zero when it was sent raw) and how long it then waited for the
    /// network. Returns the new level when it changes.
    pub fn record(&mut self, t: Timing, compressed: bool) -> Option<i32> {
        self.reading += t.reading;
        self.compressing += t.compressing;
        self.waiting += t.waiting;
        self.chunks += 1;
        self.compressed += u32::from(compressed);
        if self.chunks < WINDOW {
            return None;
        }
        let (r, c, w) = (self.reading, self.compressing, self.waiting);
        let any = self.compressed > 0;
        self.reading = Duration::ZERO;
        self.compressing = Duration::ZERO;
        self.waiting = Duration::ZERO;
        self.chunks = 0;
        self.compressed = 0;
        tracing::trace!(level = self.level, ?r, ?c, ?w, "zstd window");
        // Media that does not compress says nothing about the level.
        if !any {
            return None;
        }
        // Waiting at least half the compression time: the next level (at most
        // about 1.5x as slow) still keeps up with the network. Waiting under
        // a tenth of it, and not waiting for input either: compression holds
        // the network up, step down and remember the level was too slow.
        if let Some((_, windows)) = self.too_slow.as_mut() {
            *windows = windows.saturating_sub(1);
        }
        let blocked = self
            .too_slow
            .is_some_and(|(l, n)| n > 0 && l == self.level + 1);
        let next = if w > c / 2 && !blocked {
            self.level + 1
        } else if w < c / 10 && r < c {
            self.too_slow = Some((self.level, COOLDOWN));
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

    fn window(a: &mut Adapt, compressing: Duration, waiting: Duration) -> Option<i32> {
        let t = Timing {
            reading: Duration::ZERO,
            compressing,
            waiting,
        };
        (0..WINDOW).fold(None, |_, _| a.record(t, true))
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
        assert_eq!(window(&mut a, 10 * MS, Duration::ZERO), Some(2));
        assert_eq!(window(&mut a, 10 * MS, Duration::ZERO), Some(1));
        assert_eq!(window(&mut a, 10 * MS, Duration::ZERO), None, "floored");
    }

    #[test]
    fn a_level_found_too_slow_waits_before_it_is_tried_again() {
        // Each change ends a zstd frame: flapping between two levels every
        // window would cost more ratio than either level gains.
        let mut a = Adapt::new(3, 1, 12);
        assert_eq!(window(&mut a, MS, 10 * MS), Some(4));
        assert_eq!(window(&mut a, 10 * MS, Duration::ZERO), Some(3));
        for _ in 0..COOLDOWN - 1 {
            assert_eq!(window(&mut a, MS, 10 * MS), None, "still cooling down");
        }
        assert_eq!(window(&mut a, MS, 10 * MS), Some(4));
    }

    #[test]
    fn some_waiting_and_incompressible_data_keep_the_level() {
        let mut a = Adapt::new(3, 1, 12);
        assert_eq!(window(&mut a, 10 * MS, 3 * MS), None);
        let media = Timing {
            waiting: 10 * MS,
            ..Timing::default()
        };
        for _ in 0..WINDOW {
            assert_eq!(a.record(media, false), None);
        }
        assert_eq!(a.level(), 3);
    }

    #[test]
    fn a_slow_source_leaves_the_level_alone() {
        // btrfs send crawling through small files: nothing waits for the
        // network, but compression is not what holds it up either.
        let mut a = Adapt::new(5, 1, 12);
        let t = Timing {
            reading: 20 * MS,
            compressing: 5 * MS,
            waiting: Duration::ZERO,
        };
        for _ in 0..WINDOW {
            assert_eq!(a.record(t, true), None);
        }
        assert_eq!(a.level(), 5);
    }
}
