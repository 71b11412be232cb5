//! Per-workload scoring state: the files the workload wrote since scoring started (for drift)
//! and a cache of events already known to be covered by the profile (the fast path).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState},
};

use profiles::{Access, Event, EventDetail, diff::DiffEntry};

/// The default number of written paths a [`WorkloadState`] remembers.
pub const DEFAULT_WRITTEN_CAPACITY: usize = 4096;

/// Distinct covered events remembered before that cache starts over.
const COVERED_CAPACITY: usize = 16_384;
/// Distinct novel events remembered (with their missing entries) before that cache starts over.
const NOVEL_CAPACITY: usize = 1024;

/// Sets and maps keyed by our own keyed hashes: those are already random, so hashing them
/// again (SipHash) would only cost time.
type Prehashed = BuildHasherDefault<PrehashedHasher>;

/// The [`Hasher`] of [`Prehashed`]: a `u64` key is its own hash.
#[derive(Default)]
struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; fold anything else in, should it ever be.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// What the cache knows of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coverage<'a> {
    /// The profile covers it; `rare` when its entry was rare.
    Covered { rare: bool },
    /// The profile misses these entries.
    Novel(&'a [DiffEntry]),
}

/// What the scorer keeps about one workload between its events. One per workload; feed it
/// only that workload's events, in order.
///
/// * `written`: paths the workload opened for writing or creation since scoring started, at
///   most [`DEFAULT_WRITTEN_CAPACITY`] (the oldest is forgotten first). An exec of one of them
///   is drift: a binary that was not in the image, dropped and run. Paths are kept as 64-bit
///   keyed hashes, so an entry costs 8 bytes plus its set slot and checking an exec allocates
///   nothing; a collision could only add a drift reason, never hide one.
/// * The coverage cache: keyed hashes of events the profile was found to cover, so a repeat
///   costs one hash and one lookup instead of generalising paths (at most 16,384); and of
///   novel events with the entries they miss, so a repeated deviation skips the search for a
///   covering entry (at most 1024). The hash keys are random per state, so nobody can craft a
///   novel event that collides with a covered one. The caches start over when full, when the
///   profile's size changes (an approval, an import) and when
///   [`WorkloadState::forget_coverage`] is called; call that when a profile was replaced by
///   one of the same size.
#[derive(Debug, Clone)]
pub struct WorkloadState {
    hasher: RandomState,
    written: HashSet<u64, Prehashed>,
    written_order: VecDeque<u64>,
    written_capacity: usize,
    /// Covered event → whether its entry was rare in the profile.
    covered: HashMap<u64, bool, Prehashed>,
    /// Novel event → the entries the profile misses.
    novel: HashMap<u64, Vec<DiffEntry>, Prehashed>,
    /// The profile size the caches were filled against.
    covered_for: Option<usize>,
}

impl Default for WorkloadState {
    fn default() -> Self {
        WorkloadState::with_written_capacity(DEFAULT_WRITTEN_CAPACITY)
    }
}

impl WorkloadState {
    /// A fresh state remembering at most `capacity` written paths (at least one).
    pub fn with_written_capacity(capacity: usize) -> WorkloadState {
        WorkloadState {
            hasher: RandomState::new(),
            written: HashSet::default(),
            written_order: VecDeque::new(),
            written_capacity: capacity.max(1),
            covered: HashMap::default(),
            novel: HashMap::default(),
            covered_for: None,
        }
    }

    fn path_hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    /// Remembers that the workload wrote `path` (forgetting the oldest beyond the capacity).
    pub fn note_written(&mut self, path: &str) {
        let h = self.path_hash(path);
        if !self.written.insert(h) {
            return;
        }
        self.written_order.push_back(h);
        while self.written_order.len() > self.written_capacity {
            if let Some(old) = self.written_order.pop_front() {
                self.written.remove(&old);
            }
        }
    }

    /// True when the workload wrote `path` since scoring started (as far as remembered).
    pub fn was_written(&self, path: &str) -> bool {
        !self.written.is_empty() && self.written.contains(&self.path_hash(path))
    }

    /// How many written paths are remembered.
    pub fn written_len(&self) -> usize {
        self.written.len()
    }

    /// Forgets which events the profile covers; call after the profile changed without
    /// changing its size.
    pub fn forget_coverage(&mut self) {
        self.covered.clear();
        self.novel.clear();
        self.covered_for = None;
    }

    /// Updates the state with an event before it is scored: writes and creations are noted.
    pub(crate) fn observe(&mut self, e: &Event) {
        if let EventDetail::Open {
            path,
            access: Access::Write | Access::Create,
            ..
        } = &e.detail
        {
            self.note_written(path);
        }
    }

    /// A keyed hash of everything that decides which profile entries `e` records.
    pub(crate) fn fingerprint(&self, e: &Event) -> u64 {
        let mut h = self.hasher.build_hasher();
        e.detail.kind().hash(&mut h);
        match &e.detail {
            EventDetail::Exec {
                filename,
                argv,
                argv_unknown,
                ..
            } => {
                filename.hash(&mut h);
                argv_unknown.hash(&mut h);
                if !argv_unknown {
                    argv.get(1..).unwrap_or(&[]).hash(&mut h);
                }
                e.parent_exe.hash(&mut h);
            }
            EventDetail::Open { path, access, .. } => {
                path.hash(&mut h);
                access.hash(&mut h);
            }
            EventDetail::Connect { dest: ep } | EventDetail::Bind { local: ep } => ep.hash(&mut h),
            EventDetail::Listen { local } => local.hash(&mut h),
            // No entries: never cached.
            EventDetail::Ptrace { .. }
            | EventDetail::Setuid { .. }
            | EventDetail::Setgid { .. } => {}
        }
        h.finish()
    }

    /// What is known of the event with `fingerprint` against a profile of `profile_len`
    /// entries. Starts the caches over when the profile size changed.
    pub(crate) fn cached_coverage(
        &mut self,
        fingerprint: u64,
        profile_len: usize,
    ) -> Option<Coverage<'_>> {
        if self.covered_for != Some(profile_len) {
            self.covered.clear();
            self.novel.clear();
            self.covered_for = Some(profile_len);
            return None;
        }
        if let Some(&rare) = self.covered.get(&fingerprint) {
            return Some(Coverage::Covered { rare });
        }
        self.novel.get(&fingerprint).map(|m| Coverage::Novel(m))
    }

    /// Remembers that the event with `fingerprint` is covered (and whether it is rare).
    pub(crate) fn cache_covered(&mut self, fingerprint: u64, rare: bool) {
        if self.covered.len() >= COVERED_CAPACITY {
            self.covered.clear();
        }
        self.covered.insert(fingerprint, rare);
    }

    /// Remembers that the event with `fingerprint` misses `missing` (not empty).
    pub(crate) fn cache_novel(&mut self, fingerprint: u64, missing: Vec<DiffEntry>) {
        if self.novel.len() >= NOVEL_CAPACITY {
            self.novel.clear();
        }
        self.novel.insert(fingerprint, missing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{exec, open};

    #[test]
    fn writes_and_creations_are_remembered_reads_are_not() {
        let mut s = WorkloadState::default();
        s.observe(&open("/tmp/a", Access::Create));
        s.observe(&open("/tmp/b", Access::Write));
        s.observe(&open("/tmp/c", Access::Read));
        assert!(s.was_written("/tmp/a"));
        assert!(s.was_written("/tmp/b"));
        assert!(!s.was_written("/tmp/c"));
        assert_eq!(s.written_len(), 2);
    }

    #[test]
    fn written_paths_are_bounded_oldest_first() {
        let mut s = WorkloadState::with_written_capacity(3);
        for p in ["/a", "/b", "/c", "/a", "/d"] {
            s.note_written(p);
        }
        assert_eq!(s.written_len(), 3);
        assert!(!s.was_written("/a"), "the oldest is forgotten");
        assert!(s.was_written("/b") && s.was_written("/c") && s.was_written("/d"));
    }

    #[test]
    fn coverage_cache_starts_over_when_the_profile_changes() {
        let mut s = WorkloadState::default();
        let e = exec("/usr/bin/curl", &["curl", "-s"], None);
        let f = s.fingerprint(&e);
        let covered = |rare| Some(Coverage::Covered { rare });
        assert_eq!(s.cached_coverage(f, 10), None);
        s.cache_covered(f, false);
        assert_eq!(s.cached_coverage(f, 10), covered(false));
        assert_eq!(s.cached_coverage(f, 11), None, "size changed");
        s.cache_covered(f, true);
        assert_eq!(s.cached_coverage(f, 11), covered(true));
        s.forget_coverage();
        assert_eq!(s.cached_coverage(f, 11), None);
        let missing = crate::entries::event_entries(&e);
        s.cache_novel(f, missing.clone());
        assert_eq!(s.cached_coverage(f, 11), Some(Coverage::Novel(&missing)));
        assert_eq!(s.cached_coverage(f, 12), None, "size changed");
    }

    #[test]
    fn fingerprints_differ_by_what_the_entries_depend_on() {
        let s = WorkloadState::default();
        let base = exec("/usr/bin/curl", &["curl", "-s"], Some("/bin/sh"));
        let f = s.fingerprint(&base);
        // argv[0] is not part of the exec entry.
        let renamed = exec("/usr/bin/curl", &["x", "-s"], Some("/bin/sh"));
        assert_eq!(s.fingerprint(&renamed), f);
        for other in [
            exec("/usr/bin/curl", &["curl", "-v"], Some("/bin/sh")),
            exec("/usr/bin/wget", &["curl", "-s"], Some("/bin/sh")),
            exec("/usr/bin/curl", &["curl", "-s"], Some("/bin/bash")),
            exec("/usr/bin/curl", &["curl", "-s"], None),
        ] {
            assert_ne!(s.fingerprint(&other), f, "{other:?}");
        }
        assert_ne!(
            s.fingerprint(&open("/etc/x", Access::Read)),
            s.fingerprint(&open("/etc/x", Access::Write))
        );
    }
}
