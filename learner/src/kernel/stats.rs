//! The kernel's per-CPU statistics, summed per event kind.

use std::fmt;

use learner_ebpf::{EventKind, KindStats};

/// Statistics of every event kind, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// One entry per kind, in kind order.
    pub kinds: Vec<(EventKind, KindStats)>,
}

impl KernelStats {
    /// Sum over all kinds.
    pub fn total(&self) -> KindStats {
        let mut t = KindStats::default();
        for (_, s) in &self.kinds {
            t.add(s);
        }
        t
    }

    /// Statistics of one kind.
    pub fn kind(&self, kind: EventKind) -> KindStats {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| *s)
            .unwrap_or_default()
    }

    /// Counters as a JSON object: `{"total": {...}, "exec": {...}, ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        let one = |s: &KindStats| {
            serde_json::json!({
                "seen": s.seen, "emitted": s.emitted,
                "deduplicated": s.deduplicated, "dropped": s.dropped,
            })
        };
        let mut m = serde_json::Map::new();
        m.insert("total".into(), one(&self.total()));
        for (k, s) in &self.kinds {
            m.insert(k.name().into(), one(s));
        }
        serde_json::Value::Object(m)
    }
}

impl fmt::Display for KernelStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>12} {:>12} {:>12} {:>12}",
            "kind", "seen", "emitted", "deduplicated", "dropped"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, s: &KindStats| {
            writeln!(
                f,
                "{:<8} {:>12} {:>12} {:>12} {:>12}",
                name, s.seen, s.emitted, s.deduplicated, s.dropped
            )
        };
        for (k, s) in &self.kinds {
            row(f, k.name(), s)?;
        }
        row(f, "total", &self.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_json() {
        let s = KernelStats {
            kinds: vec![
                (
                    EventKind::Exec,
                    KindStats {
                        seen: 3,
                        emitted: 3,
                        deduplicated: 0,
                        dropped: 0,
                    },
                ),
                (
                    EventKind::Open,
                    KindStats {
                        seen: 10,
                        emitted: 4,
                        deduplicated: 5,
                        dropped: 1,
                    },
                ),
            ],
        };
        assert_eq!(
            s.total(),
            KindStats {
                seen: 13,
                emitted: 7,
                deduplicated: 5,
                dropped: 1
            }
        );
        let j = s.to_json();
        assert_eq!(j["open"]["deduplicated"], 5);
        assert_eq!(j["total"]["dropped"], 1);
        assert!(s.to_string().contains("total"));
    }
}
