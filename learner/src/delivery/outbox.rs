//! The durable outbox: alerts waiting for delivery, in the store's `outbox` tree under a
//! big-endian sequence number (so key order is FIFO).
//! A delivered entry is removed. Pending entries are mirrored in memory so passes never scan
//! the tree.

use std::{collections::BTreeMap, time::Duration};

use profiles::store::{Store, StoreError};
use scorer::alert::Alert;
use serde::{Deserialize, Serialize};

/// The store tree of the outbox.
pub const OUTBOX_TREE: &str = "outbox";

/// First retry delay; doubled on each failure.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Where an outbox entry goes. Entries written before destinations existed are webhook
/// entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// The webhook: the alert as stored, signed.
    #[default]
    Webhook,
    /// Alertmanager's API v2: a one-alert array.
    Alertmanager,
}

impl Destination {
    /// The lower-case name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::Webhook => "webhook",
            Destination::Alertmanager => "alertmanager",
        }
    }

    /// What is sent to this destination for `alert`.
    pub fn payload(self, alert: &Alert) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Destination::Webhook => serde_json::to_value(alert),
            Destination::Alertmanager => Ok(super::alertmanager::payload(alert, super::hostname())),
        }
    }
}

/// One alert waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the outbox (its store key, big-endian).
    pub seq: u64,
    /// The alert's key.
    pub key: String,
    /// Failed sends so far.
    pub attempts: u32,
    /// Not sent before this (Unix-epoch nanoseconds).
    pub next_attempt_ns: u64,
    /// The alert as delivered.
    pub payload: serde_json::Value,
    /// Where it goes (absent in entries of older agents: the webhook).
    #[serde(default)]
    pub dest: Destination,
}

/// The pending entries and delivery counters.
#[derive(Debug, Default)]
pub struct Outbox {
    next_seq: u64,
    pending: BTreeMap<u64, OutboxEntry>,
    /// Alerts delivered (2xx) since the agent started.
    pub delivered: u64,
    /// Failed sends since the agent started.
    pub failed: u64,
    /// The destinations of this run (`None`: the webhook only). Entries for others stay
    /// pending, untouched, until an agent with that destination runs.
    destinations: Option<Vec<Destination>>,
}

impl Outbox {
    /// Loads what is pending from `store`; everything pending is due at once (`now_ns`).
    pub fn load(store: &Store, now_ns: u64) -> Result<Outbox, StoreError> {
        let all: Vec<OutboxEntry> = store.all_json(OUTBOX_TREE)?;
        // Delivered entries are removed: continue after the newest pending one (numbers of
        // delivered entries may be used again, after everything still pending).
        let next_seq = all.iter().map(|e| e.seq + 1).max().unwrap_or(0);
        let pending = all
            .into_iter()
            .map(|mut e| {
                e.next_attempt_ns = e.next_attempt_ns.min(now_ns);
                (e.seq, e)
            })
            .collect();
        Ok(Outbox {
            next_seq,
            pending,
            ..Outbox::default()
        })
    }

    /// Sends to `destinations` in this run: [`Outbox::enqueue`] puts one entry per destination
    /// and only their entries are due.
    pub fn with_destinations(mut self, destinations: Vec<Destination>) -> Outbox {
        self.destinations = Some(destinations);
        self
    }

    fn destinations(&self) -> &[Destination] {
        self.destinations
            .as_deref()
            .unwrap_or(&[Destination::Webhook])
    }

    fn enabled(&self, dest: Destination) -> bool {
        self.destinations().contains(&dest)
    }

    /// Puts `alert` in the outbox, one entry per destination, due at `now_ns`; durable with the
    /// store's next flush.
    pub fn enqueue(&mut self, store: &Store, alert: &Alert, now_ns: u64) -> Result<(), StoreError> {
        for dest in self.destinations().to_vec() {
            let payload = dest.payload(alert).map_err(|e| StoreError::Codec {
                key: alert.key.clone(),
                source: profiles::codec::CodecError::Json(e.to_string()),
            })?;
            self.push(store, &alert.key, dest, payload, now_ns)?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        store: &Store,
        key: &str,
        dest: Destination,
        payload: serde_json::Value,
        now_ns: u64,
    ) -> Result<(), StoreError> {
        let entry = OutboxEntry {
            seq: self.next_seq,
            key: key.to_string(),
            attempts: 0,
            next_attempt_ns: now_ns,
            payload,
            dest,
        };
        store.put_json(OUTBOX_TREE, &entry.seq.to_be_bytes(), &entry)?;
        self.next_seq += 1;
        self.pending.insert(entry.seq, entry);
        Ok(())
    }

    /// Entries waiting for delivery.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether an entry is due at `now_ns`.
    pub fn has_due(&self, now_ns: u64) -> bool {
        self.pending
            .values()
            .any(|e| e.next_attempt_ns <= now_ns && self.enabled(e.dest))
    }

    /// Up to `max` entries due at `now_ns`, oldest first.
    pub fn due(&self, now_ns: u64, max: usize) -> Vec<OutboxEntry> {
        self.pending
            .values()
            .filter(|e| e.next_attempt_ns <= now_ns && self.enabled(e.dest))
            .take(max)
            .cloned()
            .collect()
    }

    /// Removes entry `seq` after the receiver took it.
    pub fn delivered(&mut self, store: &Store, seq: u64) -> Result<(), StoreError> {
        if self.pending.remove(&seq).is_some() {
            self.delivered += 1;
            store.remove_json(OUTBOX_TREE, &seq.to_be_bytes())?;
        }
        Ok(())
    }

    /// Records a failed send of `seq` at `now_ns`; the delay until the next attempt.
    pub fn retry(&mut self, store: &Store, seq: u64, now_ns: u64) -> Result<Duration, StoreError> {
        self.failed += 1;
        let Some(e) = self.pending.get_mut(&seq) else {
            return Ok(Duration::ZERO);
        };
        e.attempts = e.attempts.saturating_add(1);
        let wait = backoff(e.attempts, fastrand::f64());
        e.next_attempt_ns = now_ns.saturating_add(wait.as_nanos() as u64);
        store.put_json(OUTBOX_TREE, &seq.to_be_bytes(), &*e)?;
        Ok(wait)
    }
}

/// The delay after `attempts` failures: 0.5 s doubling up to 60 s, plus up to 25 % jitter
/// (`jitter` in 0..1).
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    let base = FIRST_RETRY.saturating_mul(1 << exp).min(MAX_RETRY);
    base.mul_f64(1.0 + 0.25 * jitter.clamp(0.0, 1.0))
        .min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_entries_survive_a_reopen_in_order_until_delivered() {
        let dir = std::env::temp_dir().join(format!("baseliner-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = 1_000_000_000_000;
        {
            let store = Store::open_waiting(&dir, Duration::from_secs(10)).unwrap();
            let mut ob = Outbox::load(&store, now).unwrap();
            for k in ["a", "b", "c"] {
                ob.push(
                    &store,
                    k,
                    Destination::Webhook,
                    serde_json::json!({ "key": k }),
                    now,
                )
                .unwrap();
            }
            let keys = |v: Vec<OutboxEntry>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();
            assert_eq!(keys(ob.due(now, 2)), ["a", "b"]);
            let wait = ob.retry(&store, 0, now).unwrap();
            assert!(wait >= FIRST_RETRY, "{wait:?}");
            assert_eq!(keys(ob.due(now, 8)), ["b", "c"]);
            ob.delivered(&store, 1).unwrap();
            assert_eq!((ob.pending(), ob.delivered, ob.failed), (2, 1, 1));
            store.flush().unwrap();
        }
        let store = Store::open_waiting(&dir, Duration::from_secs(10)).unwrap();
        let mut ob = Outbox::load(&store, now).unwrap();
        // What failed before the restart is due again at once, its attempts kept.
        let due = ob.due(now, 8);
        assert_eq!(
            due.iter()
                .map(|e| (e.key.as_str(), e.attempts))
                .collect::<Vec<_>>(),
            [("a", 1), ("c", 0)]
        );
        ob.push(
            &store,
            "d",
            Destination::Webhook,
            serde_json::Value::Null,
            now,
        )
        .unwrap();
        assert_eq!(ob.due(now, 8).last().map(|e| e.seq), Some(3));
        // Alertmanager entries wait for an agent that sends to Alertmanager.
        ob.push(
            &store,
            "e",
            Destination::Alertmanager,
            serde_json::Value::Null,
            now,
        )
        .unwrap();
        assert_eq!(ob.due(now, 8).len(), 3);
        let ob = ob.with_destinations(vec![Destination::Alertmanager]);
        assert_eq!(
            ob.due(now, 8)
                .iter()
                .map(|e| e.key.as_str())
                .collect::<Vec<_>>(),
            ["e"]
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn entries_of_older_agents_go_to_the_webhook() {
        let e: OutboxEntry = serde_json::from_str(
            r#"{"seq":1,"key":"k","attempts":0,"next_attempt_ns":5,"payload":null}"#,
        )
        .unwrap();
        assert_eq!(e.dest, Destination::Webhook);
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(2, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(4, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(40, 0.0), MAX_RETRY);
        assert_eq!(backoff(40, 1.0), MAX_RETRY);
        assert_eq!(backoff(1, 1.0), Duration::from_millis(625));
    }
}
