//! How far along a running send is and how long it has to go, from the stream size
//! it expects: an estimate, never negative, never 100% before the run is done.

use std::time::Duration;

use serde::Serialize;

/// The highest share a running send shows: 100% is for a confirmed one.
const MOST_PERCENT: u64 = 99;

/// A stream this many times its expected size (in tenths) proved the basis
/// wrong: the estimate is dropped rather than shown as "99% of" a figure the
/// run left far behind.
const OUTGROWN_TENTHS: u64 = 11;

/// Before this long, or this many bytes, a rate says too little for an ETA.
const SETTLED: Duration = Duration::from_secs(1);

/// A running send's progress against what it expects to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Estimate {
    /// The stream size expected, in bytes (uncompressed send stream).
    pub total_bytes: u64,
    /// `done / total`, rounded down, at most 99 while the send runs.
    pub percent: u8,
    /// Time left at the rate so far, in whole seconds; `None` while there is no
    /// rate yet (under a second, or no byte) or once the stream has passed the
    /// expected size (the estimate was low; the send goes on).
    #[serde(rename = "eta_seconds", serialize_with = "seconds")]
    pub eta: Option<Duration>,
}

fn seconds<S: serde::Serializer>(eta: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match eta {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}

/// The estimate for a send that expects `total` bytes, has sent `done` and has
/// been running for `elapsed`; `None` without a basis (`total` of 0) and once
/// the stream has outgrown the expected size by more than a tenth.
pub fn estimate(total: u64, done: u64, elapsed: Duration) -> Option<Estimate> {
    let outgrown = u128::from(done).saturating_mul(10)
        > u128::from(total).saturating_mul(u128::from(OUTGROWN_TENTHS));
    if total == 0 || outgrown {
        return None;
    }
    let percent = u128::from(done)
        .saturating_mul(100)
        .checked_div(u128::from(total))
        .map_or(0, |p| u64::try_from(p).unwrap_or(u64::MAX))
        .min(MOST_PERCENT);
    let left = total.saturating_sub(done);
    let eta = (left > 0 && done > 0 && elapsed >= SETTLED)
        .then(|| {
            // left / (done / elapsed), in milliseconds, without overflow.
            let ms = u128::from(left)
                .checked_mul(elapsed.as_millis())?
                .checked_div(u128::from(done))?;
            Some(Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)))
        })
        .flatten()
        // Whole seconds, rounded up: an ETA never says 0s while bytes remain.
        .map(|d| Duration::from_secs(d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))));
    Some(Estimate {
        total_bytes: total,
        percent: u8::try_from(percent).unwrap_or(99),
        eta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn halfway_at_a_steady_rate_takes_as_long_again() {
        let e = estimate(1000, 500, 10 * S).expect("basis");
        assert_eq!((e.total_bytes, e.percent, e.eta), (1000, 50, Some(10 * S)));
    }

    #[test]
    fn never_negative_never_done_before_the_end() {
        // Past the expected size: 99%, no ETA, nothing negative.
        let past = estimate(1000, 1100, 10 * S).expect("basis");
        assert_eq!((past.percent, past.eta), (99, None));
        // Right at it: still 99% and no ETA; the run has not confirmed.
        let at = estimate(1000, 1000, 10 * S).expect("basis");
        assert_eq!((at.percent, at.eta), (99, None));
        // One byte short: 99%, and an ETA that is not 0s.
        let near = estimate(1000, 999, 10 * S).expect("basis");
        assert_eq!(near.percent, 99);
        assert!(near.eta.is_some_and(|d| d >= S), "{near:?}");
    }

    /// Pins: a 20 MiB incremental after a 457-byte one showed "~99% of ~457 B
    /// (estimate)" for its whole run; an outgrown basis is dropped.
    #[test]
    fn a_stream_far_past_its_basis_drops_the_estimate() {
        assert!(estimate(1000, 1100, 10 * S).is_some());
        assert_eq!(estimate(1000, 1101, 10 * S), None);
        assert_eq!(estimate(457, 4 << 20, 10 * S), None);
        assert_eq!(
            estimate(u64::MAX, u64::MAX, 10 * S).map(|e| e.percent),
            Some(99)
        );
    }

    #[test]
    fn no_rate_no_eta_and_no_basis_no_estimate() {
        assert_eq!(estimate(0, 10, 10 * S), None);
        assert_eq!(estimate(1000, 0, 10 * S).expect("basis").eta, None);
        assert_eq!(
            estimate(1000, 10, Duration::from_millis(200))
                .expect("basis")
                .eta,
            None
        );
        // Huge figures do not overflow.
        let big = estimate(u64::MAX, 1, Duration::from_secs(u64::MAX / 2)).expect("basis");
        assert_eq!(big.percent, 0);
        assert_eq!(
            estimate(u64::MAX, u64::MAX - 1, 10 * S)
                .expect("basis")
                .percent,
            99
        );
    }
}
