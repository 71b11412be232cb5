//! Learn mode: events of learning workloads are redacted, generalised into their profiles in
//! memory, and written to the store in batches. Nothing is lost on restart beyond the last batch:
//! profiles are loaded back from the store on first use.

use std::collections::{HashMap, HashSet};

use anyhow::{Context as _, Result};
use profiles::{
    Event, EventDetail,
    learning::Learning,
    mode::Mode,
    redact::Redactor,
    store::{ProfileKey, Store, StoredProfile},
};

/// Revision of host workloads. Profiles are kept per workload and revision; on a plain host
/// every workload has this one revision until executable-set revisions exist.
pub const HOST_REVISION: &str = "host";

/// Records learning workloads' events into their profiles.
pub struct Recorder {
    store: Store,
    redactor: Redactor,
    profiles: HashMap<ProfileKey, StoredProfile>,
    dirty: HashSet<ProfileKey>,
    /// Modes read from the store, once per workload. The store is owned by this process, so
    /// nothing else changes them while it runs.
    modes: HashMap<String, Mode>,
    default_mode: Mode,
    /// Events recorded.
    pub recorded: u64,
    /// Secrets removed from argv before recording.
    pub redactions: u64,
}

impl Recorder {
    /// A recorder over `store`; workloads without a stored mode are in `default_mode`.
    pub fn new(store: Store, redactor: Redactor, default_mode: Mode) -> Recorder {
        Recorder {
            store,
            redactor,
            profiles: HashMap::new(),
            dirty: HashSet::new(),
            modes: HashMap::new(),
            default_mode,
            recorded: 0,
            redactions: 0,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The mode of `workload` (read from the store on first use, then from memory).
    pub fn mode(&mut self, workload: &str) -> Result<Mode> {
        if let Some(m) = self.modes.get(workload) {
            return Ok(*m);
        }
        let m = self.store.mode(workload)?.unwrap_or(self.default_mode);
        self.modes.insert(workload.to_string(), m);
        Ok(m)
    }

    /// Records one event when its workload is learning. Returns whether it was recorded.
    pub fn record(&mut self, mut event: Event) -> Result<bool> {
        if self.mode(&event.workload.id)? != Mode::Learn {
            return Ok(false);
        }
        if let EventDetail::Exec { argv, .. } = &mut event.detail {
            let (clean, n) = self.redactor.redact_argv(argv);
            *argv = clean;
            self.redactions += n as u64;
        }
        let key = ProfileKey::new(&event.workload.id, HOST_REVISION)?;
        if !self.profiles.contains_key(&key) {
            let loaded = self
                .store
                .load(&key)
                .with_context(|| format!("loading the profile of {}", key.workload))?;
            let fresh = StoredProfile {
                profile: Default::default(),
                learning: Learning::new(event.ts_ns),
            };
            self.profiles.insert(key.clone(), loaded.unwrap_or(fresh));
        }
        let Some(stored) = self.profiles.get_mut(&key) else {
            return Ok(false);
        };
        let new = stored.profile.record(&event);
        stored.learning.changed(&new, event.ts_ns);
        self.dirty.insert(key);
        self.recorded += 1;
        Ok(true)
    }

    /// Writes every changed profile in one batch and makes it durable; returns how many.
    pub fn flush(&mut self) -> Result<usize> {
        if self.dirty.is_empty() {
            return Ok(0);
        }
        let keys: Vec<ProfileKey> = self.dirty.iter().cloned().collect();
        let items = keys
            .iter()
            .filter_map(|k| self.profiles.get(k).map(|p| (k, p)));
        self.store.save_batch(items)?;
        self.store.flush()?;
        self.dirty.clear();
        Ok(keys.len())
    }
}
