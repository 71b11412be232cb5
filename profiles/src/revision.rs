//! Host revisions. On a plain host a workload's revision is named by its set of executables:
//! each program path the workload runs is recorded with a digest of its content. A program not
//! seen before joins the current revision (that is learning); a known program whose content
//! changed (an upgrade) starts a new revision, whose profile is learned afresh.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The revision state of one workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revisions {
    /// The current revision's name.
    pub current: String,
    /// Executable path → content digest, as of the current revision.
    pub executables: BTreeMap<String, String>,
    /// Every revision with when it started (Unix-epoch nanoseconds), oldest first.
    pub history: Vec<(String, u64)>,
}

/// What one observation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Nothing new.
    Known,
    /// A program joined the current revision.
    Added,
    /// A known program changed: a new revision started.
    NewRevision,
}

impl Revisions {
    /// The first revision of a workload, named after its first executable.
    pub fn start(exe: &str, digest: &str, now_ns: u64) -> Revisions {
        let mut r = Revisions {
            executables: BTreeMap::from([(exe.to_string(), digest.to_string())]),
            ..Default::default()
        };
        r.current = r.name();
        r.history.push((r.current.clone(), now_ns));
        r
    }

    /// Notes that the workload ran `exe` whose content has `digest`.
    pub fn observe(&mut self, exe: &str, digest: &str, now_ns: u64) -> Observed {
        match self.executables.get(exe) {
            Some(d) if d == digest => Observed::Known,
            None => {
                self.executables.insert(exe.into(), digest.into());
                Observed::Added
            }
            Some(_) => {
                self.executables.insert(exe.into(), digest.into());
                self.current = self.name();
                self.history.push((self.current.clone(), now_ns));
                Observed::NewRevision
            }
        }
    }

    /// The name of the executable set as it is now: 12 hex digits of its SHA-256.
    fn name(&self) -> String {
        let mut h = Sha256::new();
        for (path, digest) in &self.executables {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(digest.as_bytes());
            h.update([0]);
        }
        h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_programs_join_and_changed_programs_start_a_revision() {
        let mut r = Revisions::start("/bin/bash", "aa", 1);
        let first = r.current.clone();
        assert_eq!(first.len(), 12);
        assert_eq!(r.observe("/bin/bash", "aa", 2), Observed::Known);
        assert_eq!(r.observe("/bin/cat", "bb", 3), Observed::Added);
        assert_eq!(
            r.current, first,
            "a new program is learning, not a new revision"
        );
        assert_eq!(r.observe("/bin/cat", "cc", 4), Observed::NewRevision);
        assert_ne!(r.current, first);
        assert_eq!(r.history.len(), 2);
        assert_eq!(r.history[1], (r.current.clone(), 4));
        // The same upgrade seen again is known.
        assert_eq!(r.observe("/bin/cat", "cc", 5), Observed::Known);
        // Names depend on the set, not on the order things were seen.
        let mut other = Revisions::start("/bin/cat", "cc", 9);
        other.observe("/bin/bash", "aa", 9);
        assert_eq!(other.name(), r.name());
    }
}
