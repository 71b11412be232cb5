//! The scorer: one event, its workload's profile and state in; an explained alert, or nothing,
//! out (see the crate docs for the model).
//!
//! Novelty weights by the kind of the missing entry ([`NoveltyWeights`]):
//!
//! | missing entry | weight | alone |
//! |---|---|---|
//! | exec of a program not in the profile | 0.35 | low |
//! | exec of a known program with new arguments | 0.2 | low |
//! | lineage (parent → child) | 0.3 | low |
//! | connect destination | 0.3 | low |
//! | listening address | 0.3 | low |
//! | file (path and access class) | 0.2 | low |
//!
//! A new program usually brings a new lineage too: 0.35 + 0.3 → 0.55, medium. Rarity (the
//! event is covered, but its entry was seen at most [`Rarity::max_count`] times in a profile
//! of at least [`Rarity::min_profile_entries`]) weighs 0.1: info alone, suppressed by
//! default, a nudge beside other reasons.

use profiles::{
    Event, EventDetail, Family,
    diff::DiffEntry,
    model::{ExecEntry, Profile},
};
use serde::{Deserialize, Serialize};

pub use crate::state::WorkloadState;
use crate::{
    alert::{Alert, Reason, Severity},
    entries::{event_entries, has_entries, subject},
    rules::{Context, RULES, Scope},
    state::Coverage,
};

/// The rule name of novelty reasons.
pub const NOVELTY: &str = "novelty";
/// The rule name of rarity reasons.
pub const RARITY: &str = "rarity";

/// Weights of novelty reasons, by the kind of the entry missing from the profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoveltyWeights {
    /// A program the profile never ran.
    pub exec: f64,
    /// A program the profile ran, with arguments it never had.
    pub exec_args: f64,
    /// A parent → child start.
    pub lineage: f64,
    /// A file path with this access class.
    pub file: f64,
    /// A connection destination.
    pub connect: f64,
    /// A listening address.
    pub listen: f64,
}

impl Default for NoveltyWeights {
    fn default() -> Self {
        NoveltyWeights {
            exec: 0.35,
            exec_args: 0.2,
            lineage: 0.3,
            file: 0.2,
            connect: 0.3,
            listen: 0.3,
        }
    }
}

/// When a covered event is rare: its exact entry was seen at most `max_count` times while
/// learning, in a profile of at least `min_profile_entries` entries (a small profile has no
/// statistics to speak of). A widened entry is never rare.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rarity {
    /// Weight of a rarity reason; 0 turns rarity off.
    pub weight: f64,
    /// Smallest profile in which rarity counts.
    pub min_profile_entries: usize,
    /// Largest count of a rare entry.
    pub max_count: u64,
}

impl Default for Rarity {
    fn default() -> Self {
        Rarity {
            weight: 0.1,
            min_profile_entries: 100,
            max_count: 1,
        }
    }
}

/// Scores events against profiles. Configuration only; the per-workload state lives in
/// [`WorkloadState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scorer {
    /// Novelty weights.
    pub novelty: NoveltyWeights,
    /// Rarity of covered events.
    pub rarity: Rarity,
    /// Alerts below this severity are not raised. Default [`Severity::Low`]: info alerts (a
    /// rare but learned event alone) are suppressed.
    pub min_severity: Severity,
}

impl Default for Scorer {
    fn default() -> Self {
        Scorer {
            novelty: NoveltyWeights::default(),
            rarity: Rarity::default(),
            min_severity: Severity::Low,
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether the profile ran the program of `exec` with any arguments (an exact path match;
/// a widened path has any arguments, so it covers the exec entry itself).
fn known_program(profile: &Profile, exec: &ExecEntry) -> bool {
    let from = ExecEntry {
        path: exec.path.clone(),
        args: None,
    };
    profile
        .execs
        .range(from..)
        .next()
        .is_some_and(|(k, _)| k.path == exec.path)
}

impl Scorer {
    /// Scores `event` against its workload's `profile` and `state`; returns an alert when the
    /// event deviates at or above [`Scorer::min_severity`].
    ///
    /// The event's argv must be redacted as for [`Profile::record`] (the profile holds
    /// redacted arguments, and the alert carries the event). `state` must be this workload's.
    ///
    /// 1. The state notes the event (opens for writing or creation, for drift).
    /// 2. Novelty: each entry the event records that the profile does not cover (widened
    ///    entries included) is a novelty reason naming the entry. An empty profile has no
    ///    baseline and gives no novelty. Verdicts are cached in `state`, so a repeat costs a
    ///    hash and a lookup; a covered event with a rare entry gets a rarity reason.
    /// 3. Heuristics: the miner rule on every event; the others only on events outside the
    ///    profile (including those no profile can learn: ptrace, set*id).
    /// 4. Weights combine by noisy-or into the score, the score gives the severity.
    ///
    /// Allocation-free when the event is covered (after its first occurrence) and no rule
    /// fires.
    pub fn score(
        &self,
        event: &Event,
        profile: &Profile,
        state: &mut WorkloadState,
    ) -> Option<Alert> {
        state.observe(event);
        let mut missing: Vec<DiffEntry> = Vec::new();
        let mut rare = false;
        let in_profile = if !has_entries(event) {
            false
        } else if profile.is_empty() {
            // No baseline: nothing is novel, and nothing is learned either.
            false
        } else {
            let fingerprint = state.fingerprint(event);
            match state.cached_coverage(fingerprint, profile.len()) {
                Some(Coverage::Covered { rare: r }) => {
                    rare = r;
                    true
                }
                Some(Coverage::Novel(m)) => {
                    missing = m.to_vec();
                    false
                }
                None => {
                    let entries = event_entries(event);
                    rare = self.is_rare(profile, &entries);
                    missing = entries
                        .into_iter()
                        .filter(|e| !profile.covers_entry(e))
                        .collect();
                    if missing.is_empty() {
                        state.cache_covered(fingerprint, rare);
                    } else {
                        state.cache_novel(fingerprint, missing.clone());
                    }
                    missing.is_empty()
                }
            }
        };
        let ctx = Context { state, in_profile };
        let mut reasons = Vec::new();
        for rule in RULES {
            if rule.scope == Scope::Always || !in_profile {
                reasons.extend((rule.check)(event, &ctx));
            }
        }
        for entry in &missing {
            reasons.push(self.novelty_reason(event, profile, entry));
        }
        let rarity_matters =
            !reasons.is_empty() || self.rarity.weight >= self.min_severity.min_score();
        if rare && in_profile && rarity_matters {
            reasons.extend(self.rarity_reason(profile, event));
        }
        if reasons.is_empty() {
            return None;
        }
        let alert = Alert::new(event, &subject(event), reasons);
        (alert.severity >= self.min_severity).then_some(alert)
    }

    /// True when an entry of `entries` is present exactly and rare (see [`Rarity`]).
    fn is_rare(&self, profile: &Profile, entries: &[DiffEntry]) -> bool {
        if self.rarity.weight <= 0.0 || profile.len() < self.rarity.min_profile_entries {
            return false;
        }
        entries
            .iter()
            .any(|e| count_of(profile, e).is_some_and(|c| c <= self.rarity.max_count))
    }

    fn rarity_reason(&self, profile: &Profile, event: &Event) -> Option<Reason> {
        let entries = event_entries(event);
        let (entry, count) = entries.iter().find_map(|e| {
            count_of(profile, e)
                .filter(|&c| c <= self.rarity.max_count)
                .map(|c| (e, c))
        })?;
        let times = match count {
            1 => "once".to_string(),
            n => format!("{n} times"),
        };
        let text = format!(
            "{entry} was seen only {times} while learning (profile of {})",
            plural(profile.len(), "entry", "entries")
        );
        Some(Reason::new(
            RARITY,
            self.rarity.weight,
            text,
            Some(entry.to_string()),
        ))
    }

    /// The novelty reason for `entry`, an entry of `event` the profile does not cover.
    fn novelty_reason(&self, event: &Event, profile: &Profile, entry: &DiffEntry) -> Reason {
        let w = &self.novelty;
        let filename = match &event.detail {
            EventDetail::Exec { filename, .. } => filename.as_str(),
            _ => "",
        };
        let (weight, text) = match entry {
            DiffEntry::Exec(exec) => {
                let learned = plural(profile.execs.len(), "exec", "execs");
                if known_program(profile, exec) {
                    let text = format!(
                        "{filename} runs with arguments not in the profile (learned: {learned})"
                    );
                    (w.exec_args, text)
                } else {
                    let text =
                        format!("exec of {filename} is not in the profile (learned: {learned})");
                    (w.exec, text)
                }
            }
            DiffEntry::Lineage(_) => {
                let parent = event.parent_exe.as_deref().unwrap_or("?");
                let learned = plural(
                    profile.lineage.len(),
                    "parent-child start",
                    "parent-child starts",
                );
                let text = format!(
                    "{parent} starting {filename} is not in the profile (learned: {learned})"
                );
                (w.lineage, text)
            }
            DiffEntry::File(_) => {
                let EventDetail::Open { path, access, .. } = &event.detail else {
                    unreachable!("a file entry comes from an open");
                };
                let learned = plural(profile.files.len(), "file entry", "file entries");
                let text = format!("{access} of {path} is not in the profile (learned: {learned})");
                (w.file, text)
            }
            DiffEntry::Connect(_) => {
                let where_ = endpoint_shown(event);
                let learned = plural(profile.connects.len(), "destination", "destinations");
                let text =
                    format!("connection to {where_} is not in the profile (learned: {learned})");
                (w.connect, text)
            }
            DiffEntry::Listen(_) => {
                let where_ = endpoint_shown(event);
                let learned = plural(
                    profile.listens.len(),
                    "listening address",
                    "listening addresses",
                );
                let text =
                    format!("listening on {where_} is not in the profile (learned: {learned})");
                (w.listen, text)
            }
        };
        Reason::new(NOVELTY, weight, text, Some(entry.to_string()))
    }
}

/// The exact entry's count, when the profile holds `entry` itself.
fn count_of(profile: &Profile, entry: &DiffEntry) -> Option<u64> {
    let seen = match entry {
        DiffEntry::Exec(k) => profile.execs.get(k),
        DiffEntry::Lineage(k) => profile.lineage.get(k),
        DiffEntry::File(k) => profile.files.get(k),
        DiffEntry::Connect(k) => profile.connects.get(k),
        DiffEntry::Listen(k) => profile.listens.get(k),
    };
    seen.map(|s| s.count)
}

/// The raw endpoint of a network event: `1.2.3.4:443 (tcp)`, `[::1]:53 (udp)`, `unix
/// socket /run/x.sock`.
fn endpoint_shown(event: &Event) -> String {
    let ep = match &event.detail {
        EventDetail::Connect { dest } => dest,
        EventDetail::Bind { local } | EventDetail::Listen { local: Some(local) } => local,
        _ => return "?".to_string(),
    };
    let proto = format!("{:?}", ep.protocol).to_ascii_lowercase();
    match ep.family {
        Family::Inet => format!("{}:{} ({proto})", ep.addr, ep.port),
        Family::Inet6 => format!("[{}]:{} ({proto})", ep.addr, ep.port),
        Family::Unix => format!("unix socket {} ({proto})", ep.addr),
    }
}

#[cfg(test)]
mod tests;
