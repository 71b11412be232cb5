//! The alert type, severities, and the aggregation of repeats.
//!
//! An [`Alert`] is one deviation of one workload, explained by its [`Reason`]s. Its
//! [`Alert::key`] names the deviation (workload, rules that fired, the generalised entries of the
//! event), so the same deviation seen again is a repeat: the [`Aggregator`] counts it on the
//! first alert instead of delivering it again.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    str::FromStr,
};

use profiles::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How bad a deviation is. Ordered: `Info < Low < Medium < High < Critical`.
///
/// From a combined score in 0..=1 ([`Severity::from_score`]):
///
/// | severity | score |
/// |---|---|
/// | critical | ≥ 0.90 |
/// | high | ≥ 0.70 |
/// | medium | ≥ 0.40 |
/// | low | ≥ 0.20 |
/// | info | below 0.20 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording, not worth waking anyone (suppressed by default).
    Info,
    /// A small deviation: a new file read, new arguments of a known program.
    Low,
    /// A new program, destination or listener; a single weaker heuristic.
    Medium,
    /// A strong heuristic: a shell spawned by a server, a credential read, a dropped binary run.
    High,
    /// A crypto-miner signature, or several strong signs together.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowest score of this severity (see the table on [`Severity`]).
    pub fn min_score(self) -> f64 {
        match self {
            Severity::Info => 0.0,
            Severity::Low => 0.2,
            Severity::Medium => 0.4,
            Severity::High => 0.7,
            Severity::Critical => 0.9,
        }
    }

    /// The severity of a combined score in 0..=1; out-of-range scores are clamped and NaN is
    /// `Info`.
    pub fn from_score(score: f64) -> Severity {
        Severity::ALL
            .into_iter()
            .rev()
            .find(|s| score >= s.min_score())
            .unwrap_or(Severity::Info)
    }

    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is none of `info`, `low`, `medium`, `high`, `critical`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected info, low, medium, high or critical)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    /// Parses the JSON name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownSeverity(s.to_string()))
    }
}

/// One reason an event deviates, with the weight it adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The rule that found it: `novelty`, `rarity`, `crypto-miner`, `sensitive-file`,
    /// `writable-exec`, `shell-from-server`, `drift`, `ptrace`, `privilege-change`.
    pub rule: String,
    /// The probability-like weight in 0..=1 this reason contributes ([`combine`]).
    pub weight: f64,
    /// What was seen, in plain words.
    pub text: String,
    /// The profile entry compared with (the missing one for novelty), as
    /// [`profiles::diff::DiffEntry`] renders it, e.g. `exec /tmp/xmrig -o <num>`; `None` for
    /// events that no profile entry describes (ptrace, set*id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

impl Reason {
    /// A reason of `rule` with `weight` (clamped to 0..=1).
    pub fn new(rule: &str, weight: f64, text: String, entry: Option<String>) -> Reason {
        Reason {
            rule: rule.to_string(),
            weight: clamp(weight),
            text,
            entry,
        }
    }
}

fn clamp(w: f64) -> f64 {
    if w.is_nan() { 0.0 } else { w.clamp(0.0, 1.0) }
}

/// Noisy-or of the weights: `1 - Π(1 - w)`. Independent pieces of evidence add up without
/// ever passing 1; one reason alone scores its own weight; no reasons score 0. Rounded to six
/// decimals, so that a reason of weight 0.2 alone scores exactly 0.2 (low), not 0.19999….
pub fn combine(weights: impl IntoIterator<Item = f64>) -> f64 {
    let p = 1.0 - weights.into_iter().map(|w| 1.0 - clamp(w)).product::<f64>();
    (p * 1e6).round() / 1e6
}

/// One deviation of one workload, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id of the deviation ([`alert_key`]): the same deviation seen again, in this run
    /// or another, has the same key, so repeats aggregate.
    pub key: String,
    /// The workload id ([`profiles::Workload::id`]).
    pub workload: String,
    /// From [`Alert::score`] ([`Severity::from_score`]).
    pub severity: Severity,
    /// The reasons' weights combined ([`combine`]), 0..=1.
    pub score: f64,
    /// One line naming the strongest reason, e.g. `crypto-miner signature: /tmp/xmrig runs with
    /// a stratum pool URL (stratum+tcp://pool.example:3333)`.
    pub summary: String,
    /// Every reason, strongest first.
    pub reasons: Vec<Reason>,
    /// The first event that raised this alert.
    pub event: Event,
    /// How often the deviation was seen (1 when raised; repeats add).
    pub count: u64,
    /// Time of the first occurrence, Unix-epoch nanoseconds.
    pub first_ns: u64,
    /// Time of the latest occurrence, Unix-epoch nanoseconds.
    pub last_ns: u64,
    /// What enforcement did about the event (enforce and dry-run modes); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
    /// Responses taken because of the alert (kill, freeze, ...), with their outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionTaken>,
    /// Who acknowledged the alert, when and why; absent until someone does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
}

/// An alert's acknowledgement by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Who (the API token's name).
    pub by: String,
    /// When, Unix-epoch nanoseconds.
    pub at_ns: u64,
    /// Why, in their words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

/// The rule name of the reason that says what enforcement did.
pub const ENFORCE: &str = "enforce";

/// What enforcement did about an alert's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// The kernel refused it: the exec was killed before it ran, the connect got EPERM.
    Blocked,
    /// Dry run: enforce mode would have refused it.
    WouldBlock,
}

/// A response taken because of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionTaken {
    /// The action (`kill`, `freeze`, `quarantine`, `delete-pod`).
    pub action: String,
    /// Its target, e.g. `pid 4242 and 3 descendants`.
    pub target: String,
    /// `done`, `skipped: <why>` or `failed: <why>`.
    pub outcome: String,
    /// When, Unix-epoch nanoseconds.
    pub at_ns: u64,
}

impl Alert {
    /// An alert about `event`, for `reasons` (at least one), whose deviation is described by
    /// `subject` (the generalised entries of the event, see [`alert_key`]). Reasons are sorted
    /// strongest first (stable); the summary is the strongest reason's text, plus how many more
    /// reasons there are.
    pub fn new(event: &Event, subject: &str, mut reasons: Vec<Reason>) -> Alert {
        reasons.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        let score = combine(reasons.iter().map(|r| r.weight));
        let rules: Vec<&str> = reasons.iter().map(|r| r.rule.as_str()).collect();
        let key = alert_key(&event.workload.id, &rules, subject);
        let summary = match reasons.as_slice() {
            [] => "no reason".to_string(),
            [one] => one.text.clone(),
            [first, rest @ ..] => {
                let n = rest.len();
                let s = if n == 1 { "" } else { "s" };
                format!("{} (+{n} more reason{s})", first.text)
            }
        };
        Alert {
            key,
            workload: event.workload.id.clone(),
            severity: Severity::from_score(score),
            score,
            summary,
            reasons,
            event: event.clone(),
            count: 1,
            first_ns: event.ts_ns,
            last_ns: event.ts_ns,
            enforcement: None,
            actions: Vec::new(),
            ack: None,
        }
    }

    /// Notes what enforcement did (`how`, in words: `the kernel killed /tmp/x before it ran`):
    /// a reason of weight 0 (the score and the key stay), and the summary says it first.
    pub fn enforced(mut self, what: Enforcement, how: String) -> Alert {
        let tag = match what {
            Enforcement::Blocked => "blocked",
            Enforcement::WouldBlock => "would be blocked",
        };
        self.summary = format!("[{tag}] {}", self.summary);
        self.reasons.push(Reason::new(ENFORCE, 0.0, how, None));
        self.enforcement = Some(what);
        self
    }
}

/// Hex digits of the key (128 of the 256 bits of SHA-256).
const KEY_HEX_LEN: usize = 32;

/// The stable id of a deviation: the first 128 bits, in hex, of SHA-256 over the workload id,
/// the sorted and deduplicated rule names, and `subject`, the generalised entries the alert is
/// about (e.g. `exec /tmp/xmrig -o <num>; lineage /bin/bash -> /tmp/xmrig`). Fields are
/// separated by NUL, which none of them contains.
pub fn alert_key(workload: &str, rules: &[&str], subject: &str) -> String {
    let mut rules = rules.to_vec();
    rules.sort_unstable();
    rules.dedup();
    let mut h = Sha256::new();
    h.update(workload.as_bytes());
    h.update([0]);
    for r in &rules {
        h.update(r.as_bytes());
        h.update([b',']);
    }
    h.update([0]);
    h.update(subject.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(KEY_HEX_LEN);
    for b in &digest[..KEY_HEX_LEN / 2] {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// The default [`Aggregator`] capacity.
pub const DEFAULT_AGGREGATOR_CAPACITY: usize = 10_000;

/// What [`Aggregator::observe`] made of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// A deviation not seen before (or forgotten since): deliver the alert.
    New,
    /// A repeat, counted on the alert first raised for its key ([`Aggregator::get`]).
    Repeat {
        /// Occurrences so far, this one included.
        count: u64,
        /// True when the count just reached a power of ten (10, 100, 1000, …): re-announce
        /// the aggregate then, so a long-running deviation stays visible without flooding.
        announce: bool,
    },
}

#[derive(Debug, Clone)]
struct Slot {
    alert: Alert,
    /// When the key was last observed (the aggregator's clock).
    tick: u64,
}

/// Aggregates repeats: a bounded map from alert key to the first alert of that key, which
/// counts the repeats (`count`, `first_ns`, `last_ns`).
///
/// * The first alert of a key is [`Observed::New`]: deliver it.
/// * Later ones are [`Observed::Repeat`]: only counted. A repeat is re-announced (`announce`)
///   when the count reaches a power of ten — 10, 100, 1000, … — so a deviation seen a million
///   times is announced six times, never flooding, and its scale stays visible. (Counting
///   rather than time keeps the aggregator free of clocks and deterministic in replay.)
/// * At most `capacity` keys are kept; beyond that the least recently observed key is
///   forgotten, and seen again it is new again.
#[derive(Debug, Clone)]
pub struct Aggregator {
    capacity: usize,
    slots: HashMap<String, Slot>,
    /// Keys by the tick they were last observed at: the oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator::new(DEFAULT_AGGREGATOR_CAPACITY)
    }
}

/// True when a power of ten ≥ 10 lies in `(before, after]`.
fn passes_power_of_ten(before: u64, after: u64) -> bool {
    let mut p: u64 = 10;
    loop {
        if p > after {
            return false;
        }
        if p > before {
            return true;
        }
        match p.checked_mul(10) {
            Some(next) => p = next,
            None => return false,
        }
    }
}

impl Aggregator {
    /// An aggregator keeping at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Aggregator {
        Aggregator {
            capacity: capacity.max(1),
            slots: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Counts `alert`: new when its key is not held, else a repeat added to the held alert
    /// (`count` adds `alert.count`, the time span widens). See [`Aggregator`].
    pub fn observe(&mut self, alert: Alert) -> Observed {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.slots.get_mut(&alert.key) {
            let held = &mut slot.alert;
            let before = held.count;
            held.count = before.saturating_add(alert.count.max(1));
            held.first_ns = held.first_ns.min(alert.first_ns);
            held.last_ns = held.last_ns.max(alert.last_ns);
            let count = held.count;
            self.order.remove(&slot.tick);
            slot.tick = tick;
            self.order.insert(tick, alert.key);
            return Observed::Repeat {
                count,
                announce: passes_power_of_ten(before, count),
            };
        }
        while self.slots.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.slots.remove(&oldest);
        }
        self.order.insert(tick, alert.key.clone());
        self.slots.insert(alert.key.clone(), Slot { alert, tick });
        Observed::New
    }

    /// The aggregate held for `key`: the first alert with the repeats counted.
    pub fn get(&self, key: &str) -> Option<&Alert> {
        self.slots.get(key).map(|s| &s.alert)
    }

    /// Forgets `key` (e.g. once acknowledged); returns its aggregate.
    pub fn remove(&mut self, key: &str) -> Option<Alert> {
        let slot = self.slots.remove(key)?;
        self.order.remove(&slot.tick);
        Some(slot.alert)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The aggregates held, in no particular order.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.slots.values().map(|s| &s.alert)
    }
}

#[cfg(test)]
mod tests {
    use profiles::{EventDetail, SCHEMA_VERSION, Workload};

    use super::*;

    fn event(ts_ns: u64, filename: &str) -> Event {
        Event {
            schema: SCHEMA_VERSION,
            ts_ns,
            workload: Workload {
                id: "/system.slice/web.service".into(),
                cgroup_id: 9,
                cgroup: "/system.slice/web.service".into(),
                runtime: None,
                container_id: None,
                pod_uid: None,
                unit: Some("web.service".into()),
                k8s: None,
            },
            pid: 10,
            tid: 10,
            ppid: 1,
            uid: 33,
            gid: 33,
            comm: "web".into(),
            exe: Some(filename.into()),
            parent_exe: None,
            existing: false,
            blocked: false,
            detail: EventDetail::Exec {
                filename: filename.into(),
                argv: vec![filename.into()],
                argv_truncated: false,
                argv_unknown: false,
            },
        }
    }

    fn alert(ts_ns: u64, filename: &str) -> Alert {
        let reasons = vec![
            Reason::new("novelty", 0.35, format!("exec of {filename}"), None),
            Reason::new("writable-exec", 0.55, format!("{filename} in /tmp"), None),
        ];
        Alert::new(
            &event(ts_ns, filename),
            &format!("exec {filename}"),
            reasons,
        )
    }

    #[test]
    fn severity_thresholds() {
        let cases = [
            (0.0, Severity::Info),
            (0.199, Severity::Info),
            (0.2, Severity::Low),
            (0.399, Severity::Low),
            (0.4, Severity::Medium),
            (0.699, Severity::Medium),
            (0.7, Severity::High),
            (0.899, Severity::High),
            (0.9, Severity::Critical),
            (1.0, Severity::Critical),
            (7.0, Severity::Critical),
            (-1.0, Severity::Info),
            (f64::NAN, Severity::Info),
        ];
        for (score, want) in cases {
            assert_eq!(Severity::from_score(score), want, "{score}");
        }
        for s in Severity::ALL {
            assert_eq!(Severity::from_score(s.min_score()), s);
        }
    }

    #[test]
    fn severity_orders_prints_and_parses() {
        assert!(Severity::Info < Severity::Low);
        assert!(Severity::High < Severity::Critical);
        assert_eq!(Severity::Medium.to_string(), "medium");
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            "\"critical\""
        );
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
        assert!("severe".parse::<Severity>().is_err());
    }

    #[test]
    fn noisy_or_combines_weights() {
        assert_eq!(combine([]), 0.0);
        assert_eq!(combine([0.35]), 0.35);
        assert_eq!(combine([0.2]), 0.2);
        assert_eq!(combine([0.5, 0.5]), 0.75);
        assert!(combine([0.9, 0.9, 0.9, 0.9]) < 1.0);
        assert_eq!(combine([2.0]), 1.0);
    }

    #[test]
    fn alert_sorts_reasons_and_summarises_the_strongest() {
        let a = alert(5, "/tmp/x");
        assert_eq!(a.reasons[0].rule, "writable-exec");
        assert_eq!(a.summary, "/tmp/x in /tmp (+1 more reason)");
        assert_eq!(a.score, 0.7075);
        assert_eq!(a.severity, Severity::High);
        assert_eq!((a.count, a.first_ns, a.last_ns), (1, 5, 5));
        let back: Alert = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn key_is_stable_and_ignores_rule_order() {
        let k = alert_key("w", &["novelty", "drift"], "exec /tmp/x");
        // A fixed value: keys must not change between runs or builds (stored alerts aggregate
        // by it).
        assert_eq!(k, "9f3296c975d8ae4863342f66d4fcc675");
        assert_eq!(
            k,
            alert_key("w", &["drift", "novelty", "drift"], "exec /tmp/x")
        );
        assert_eq!(k.len(), KEY_HEX_LEN);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut h = Sha256::new();
        h.update(b"w\0drift,novelty,\0exec /tmp/x");
        let full: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(k, full[..KEY_HEX_LEN]);
        assert_ne!(k, alert_key("w2", &["novelty", "drift"], "exec /tmp/x"));
        assert_ne!(k, alert_key("w", &["novelty"], "exec /tmp/x"));
        assert_ne!(k, alert_key("w", &["novelty", "drift"], "exec /tmp/y"));
    }

    #[test]
    fn same_deviation_twice_is_one_new_and_one_repeat() {
        let mut agg = Aggregator::default();
        let first = alert(10, "/tmp/x");
        let key = first.key.clone();
        assert_eq!(agg.observe(first), Observed::New);
        let again = alert(20, "/tmp/x");
        assert_eq!(again.key, key);
        assert_eq!(
            agg.observe(again),
            Observed::Repeat {
                count: 2,
                announce: false
            }
        );
        let held = agg.get(&key).unwrap();
        assert_eq!((held.count, held.first_ns, held.last_ns), (2, 10, 20));
        assert_eq!(held.event.ts_ns, 10, "the first example is kept");
        let other = alert(30, "/tmp/y");
        assert_ne!(other.key, key);
        assert_eq!(agg.observe(other), Observed::New);
        assert_eq!(agg.len(), 2);
    }

    #[test]
    fn repeats_are_announced_at_powers_of_ten() {
        let mut agg = Aggregator::default();
        let mut announced = Vec::new();
        for i in 0..1500 {
            if let Observed::Repeat {
                count,
                announce: true,
            } = agg.observe(alert(i, "/tmp/x"))
            {
                announced.push(count);
            }
        }
        assert_eq!(announced, [10, 100, 1000]);
        assert!(passes_power_of_ten(9, 12));
        assert!(!passes_power_of_ten(10, 99));
        assert!(!passes_power_of_ten(u64::MAX - 1, u64::MAX));
    }

    #[test]
    fn the_least_recently_seen_key_is_evicted() {
        let mut agg = Aggregator::new(2);
        assert_eq!(agg.observe(alert(1, "/tmp/a")), Observed::New);
        assert_eq!(agg.observe(alert(2, "/tmp/b")), Observed::New);
        // /tmp/a is seen again, so /tmp/b is now the oldest.
        assert!(matches!(
            agg.observe(alert(3, "/tmp/a")),
            Observed::Repeat { count: 2, .. }
        ));
        assert_eq!(agg.observe(alert(4, "/tmp/c")), Observed::New);
        assert_eq!(agg.len(), 2);
        assert!(agg.get(&alert(0, "/tmp/b").key).is_none());
        assert!(agg.get(&alert(0, "/tmp/a").key).is_some());
        assert_eq!(agg.observe(alert(5, "/tmp/b")), Observed::New);
        let a = agg.remove(&alert(0, "/tmp/c").key).unwrap();
        assert_eq!(a.count, 1);
        assert_eq!(agg.len(), 1);
    }
}
