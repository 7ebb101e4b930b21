//! What the receiver counts that its database does not record: refusals by
//! reason and when each peer was last seen. In memory, so reset by a restart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Why a connection or request was turned away: the `reason` label of
/// `ferry_receive_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// A TLS client whose certificate no appliance here is pinned to.
    UnknownPeer,
    /// A TLS handshake or hello that failed or timed out.
    Handshake,
    /// `refused{busy: true}`: the sender is to retry later.
    Busy,
    /// `refused{busy: false}`: a request this receiver will not serve as is.
    Refused,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::UnknownPeer,
        Refusal::Handshake,
        Refusal::Busy,
        Refusal::Refused,
    ];

    /// The reason of a refusal sent to a peer.
    pub(super) fn of(r: &crate::wire::Refused) -> Refusal {
        if r.busy {
            Refusal::Busy
        } else {
            Refusal::Refused
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Refusal::UnknownPeer => "unknown_peer",
            Refusal::Handshake => "handshake",
            Refusal::Busy => "busy",
            Refusal::Refused => "refused",
        }
    }
}

/// The receiver's in-memory counters.
#[derive(Debug, Default)]
pub struct Stats {
    refusals: Mutex<BTreeMap<Refusal, u64>>,
    seen: Mutex<BTreeMap<String, DateTime<Utc>>>,
}

impl Stats {
    pub(super) fn refused(&self, why: Refusal) {
        let mut map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(why).or_default();
        *n = n.saturating_add(1);
    }

    /// Records that `appliance` opened a session now.
    pub(super) fn seen(&self, appliance: &str) {
        let mut map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(appliance.to_owned(), Utc::now());
    }

    /// Refusals since start, every reason listed (zero included).
    pub fn refusals(&self) -> Vec<(Refusal, u64)> {
        let map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        Refusal::ALL
            .iter()
            .map(|r| (*r, map.get(r).copied().unwrap_or(0)))
            .collect()
    }

    /// When each appliance last opened a session since this receiver started.
    pub fn peers_seen(&self) -> Vec<(String, DateTime<Utc>)> {
        let map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}
