//! The receiver's metrics: receives by outcome and their bytes, the newest
//! replica and the replica count of each line, refusals, and when peers were seen.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus_client::registry::Registry;

use super::scrape::{counters, gauges, int, labels, register_build_info, Error, Scrape};
use super::tally::Tally;
use crate::health;
use crate::receiver::Shared;
use crate::store::{History, Store};

/// What a scrape keeps between scrapes.
struct State {
    store: Store,
    tally: Tally,
    /// When each source last started a receive, from history at the first
    /// scrape: what "last seen" is before a peer connects again.
    seen_before: BTreeMap<String, DateTime<Utc>>,
}

/// Scrapes the receiver's state database and its in-memory counters.
pub struct ReceiverMetrics {
    state_dir: PathBuf,
    shared: Arc<Shared>,
    state: Mutex<Option<State>>,
}

impl ReceiverMetrics {
    pub fn new(state_dir: PathBuf, shared: Arc<Shared>) -> ReceiverMetrics {
        ReceiverMetrics {
            state_dir,
            shared,
            state: Mutex::new(None),
        }
    }
}

impl Scrape for ReceiverMetrics {
    fn registry(&self) -> Result<Registry, Error> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let store = Store::open(&self.state_dir)?;
            let seen_before = store.last_receive_per_source()?.into_iter().collect();
            *guard = Some(State {
                store,
                tally: Tally::new(History::Receive),
                seen_before,
            });
        }
        let Some(state) = guard.as_mut() else {
            unreachable!("set just above")
        };
        state.tally.update(&state.store)?;
        let lines = health::replica_lines(&state.store, Utc::now())?;

        let mut r = Registry::default();
        register_build_info(&mut r);
        let runs = counters(
            &mut r,
            "ferry_receive_runs",
            "Finished receive attempts by outcome (succeeded, failed)",
        );
        for ((key, status), n) in &state.tally.runs {
            let (source, share) = source_share(key);
            runs.get_or_create(&labels(&[
                ("source", source),
                ("share", share),
                ("status", status),
            ]))
            .inc_by(*n);
        }
        let stream = counters(
            &mut r,
            "ferry_receive_stream_bytes",
            "Uncompressed send stream bytes of finished receives",
        );
        for (key, (s, _)) in &state.tally.bytes {
            let (source, share) = source_share(key);
            stream
                .get_or_create(&labels(&[("source", source), ("share", share)]))
                .inc_by(*s);
        }
        let newest = gauges(
            &mut r,
            "ferry_replica_newest_timestamp_seconds",
            "When the newest verified replica of the line arrived (Unix time)",
        );
        let count = gauges(
            &mut r,
            "ferry_replicas",
            "Verified replicas kept of the line",
        );
        for l in &lines {
            let n = &l.newest;
            let key = labels(&[
                ("source", &n.source),
                ("share", &n.share),
                ("pool", &n.pool),
            ]);
            newest.get_or_create(&key).set(n.received_at.timestamp());
            count.get_or_create(&key).set(i64::from(l.count));
        }
        let refused = counters(
            &mut r,
            "ferry_receive_refused",
            "Connections and requests turned away since start, by reason",
        );
        for (why, n) in self.shared.stats().refusals() {
            refused
                .get_or_create(&labels(&[("reason", why.label())]))
                .inc_by(n);
        }
        let seen = gauges(
            &mut r,
            "ferry_peer_last_seen_timestamp_seconds",
            "When the appliance last opened a session here (Unix time)",
        );
        let mut last = state.seen_before.clone();
        for (peer, at) in self.shared.stats().peers_seen() {
            let entry = last.entry(peer).or_insert(at);
            *entry = (*entry).max(at);
        }
        for (peer, at) in &last {
            seen.get_or_create(&labels(&[("appliance", peer)]))
                .set(at.timestamp());
        }
        let running = gauges(&mut r, "ferry_receives_in_flight", "Receives running now");
        running
            .get_or_create(&Vec::new())
            .set(int(self.shared.receives_running() as u64));
        Ok(r)
    }
}

fn source_share(key: &[String]) -> (&str, &str) {
    (
        key.first().map_or("", String::as_str),
        key.get(1).map_or("", String::as_str),
    )
}
