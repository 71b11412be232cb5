//! Learning state of a profile: when it last changed (per entry kind), whether it is stable, and
//! why it may be incomplete.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use crate::model::EntryKind;

/// Where a profile stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// New entries still appear.
    Learning,
    /// No new entry for the configured stable period.
    Stable,
    /// The profile is known to miss behaviour (see [`Learning::incomplete`]).
    Incomplete,
}

/// The durable learning state stored beside a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learning {
    /// When learning started (Unix-epoch nanoseconds).
    pub started_ns: u64,
    /// When each kind of entry last gained a new entry.
    pub last_change_ns: BTreeMap<EntryKind, u64>,
    /// Why the profile may miss behaviour (size bound forced widening, agent down, ...).
    pub incomplete: Vec<String>,
}

impl Learning {
    /// Learning that starts at `now_ns`.
    pub fn new(now_ns: u64) -> Learning {
        Learning {
            started_ns: now_ns,
            last_change_ns: BTreeMap::new(),
            incomplete: Vec::new(),
        }
    }

    /// Notes new entries of `kinds` at `ts_ns`.
    pub fn changed(&mut self, kinds: &[EntryKind], ts_ns: u64) {
        for k in kinds {
            let t = self.last_change_ns.entry(*k).or_insert(ts_ns);
            *t = (*t).max(ts_ns);
        }
    }

    /// The last time anything new was learned (the start when nothing was).
    pub fn last_change_ns(&self) -> u64 {
        self.last_change_ns
            .values()
            .copied()
            .max()
            .unwrap_or(self.started_ns)
            .max(self.started_ns)
    }

    /// How long the profile has gone without a new entry.
    pub fn stable_for(&self, now_ns: u64) -> Duration {
        Duration::from_nanos(now_ns.saturating_sub(self.last_change_ns()))
    }

    /// Records why the profile may miss behaviour (each reason once).
    pub fn mark_incomplete(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        if !self.incomplete.contains(&reason) {
            self.incomplete.push(reason);
        }
    }

    /// The status at `now_ns`, given the period without change that counts as stable.
    pub fn status(&self, now_ns: u64, stable_after: Duration) -> Status {
        if !self.incomplete.is_empty() {
            Status::Incomplete
        } else if self.stable_for(now_ns) >= stable_after {
            Status::Stable
        } else {
            Status::Learning
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn stability_follows_the_last_new_entry() {
        let mut l = Learning::new(100 * S);
        assert_eq!(l.status(100 * S, Duration::from_secs(60)), Status::Learning);
        l.changed(&[EntryKind::File, EntryKind::Exec], 130 * S);
        l.changed(&[EntryKind::File], 120 * S); // an older timestamp does not move it back
        assert_eq!(l.last_change_ns(), 130 * S);
        assert_eq!(l.stable_for(150 * S), Duration::from_secs(20));
        assert_eq!(l.status(189 * S, Duration::from_secs(60)), Status::Learning);
        assert_eq!(l.status(190 * S, Duration::from_secs(60)), Status::Stable);
        l.mark_incomplete("size bound forced widening of files");
        l.mark_incomplete("size bound forced widening of files");
        assert_eq!(l.incomplete.len(), 1);
        assert_eq!(
            l.status(999 * S, Duration::from_secs(60)),
            Status::Incomplete
        );
    }
}
