//! Learn mode: events of learning workloads are redacted, generalised into their profiles in
//! memory, and written to the store in batches. Nothing is lost on restart beyond the last batch:
//! profiles are loaded back from the store on first use.
//!
//! The recorder also owns what the API changes while the agent runs (modes, imports), so a
//! change applies to the next event, and each workload's host revision ([`Revisions`]).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use api::{Settings, Versions};
use profiles::{
    Event, EventDetail,
    bound::Limits,
    learning::{Learning, Status},
    mode::Mode,
    model::Profile,
    rates::{DEFAULT_WINDOW_NS, RateLearner, RateSamples},
    redact::Redactor,
    review::Approval,
    revision::{Observed, Revisions},
    store::{ProfileKey, Store, StoredProfile},
};

use crate::digest::Digests;

/// Learning settings with the defaults of `baseliner run`.
pub fn default_settings(default_mode: Mode) -> Settings {
    Settings {
        default_mode,
        stable_after: Duration::from_secs(3600),
        auto_alert_after: None,
        max_entries: 1000,
    }
}

/// Now, in Unix-epoch nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Profiles kept in memory at most; past that, clean least-recently-used ones are dropped after
/// a flush (they are in the store).
pub const MAX_RESIDENT: usize = 128;

/// A profile in memory.
struct Resident {
    stored: StoredProfile,
    /// Changed since the last flush.
    dirty: bool,
    /// [`Recorder::seq`] when last recorded into.
    used: u64,
    /// Windows of activity learned beside the profile.
    rates: RateSamples,
    /// `rates` changed since the last flush.
    rates_dirty: bool,
}

/// Records learning workloads' events into their profiles.
pub struct Recorder {
    store: Store,
    redactor: Redactor,
    settings: Settings,
    /// Profiles in memory: workload → revision → profile. Only the recently used stay
    /// resident ([`MAX_RESIDENT`]); the others are read back from the store when needed.
    profiles: HashMap<String, HashMap<String, Resident>>,
    resident: usize,
    /// Event sequence number, for least-recently-used eviction.
    seq: u64,
    /// Revision state per workload, loaded from the store on first use.
    revisions: HashMap<String, Revisions>,
    dirty_revisions: HashSet<String>,
    digests: Digests,
    /// The open window of each learning workload.
    windows: HashMap<String, RateLearner>,
    /// Modes read from the store, once per workload; [`Recorder::set_mode`] keeps them current.
    modes: HashMap<String, Mode>,
    /// Events recorded.
    pub recorded: u64,
    /// Secrets removed from argv before recording.
    pub redactions: u64,
    /// Changes made to stored profiles from outside learning (imports, approvals); scorers
    /// holding a copy read the profile again when this moves.
    pub changes: u64,
    /// Change counters the API's cached answers follow.
    versions: Arc<Versions>,
    /// On Kubernetes: what other nodes learned of a workload (their parts of its
    /// `WorkloadProfile`, merged). Scoring and enforcement use it beside the local profile.
    shared: HashMap<String, Arc<Profile>>,
}

impl Recorder {
    /// A recorder over `store`; workloads without a stored mode are in `default_mode`.
    pub fn new(store: Store, redactor: Redactor, default_mode: Mode) -> Recorder {
        Recorder::with_settings(store, redactor, default_settings(default_mode))
    }

    /// A recorder with explicit learning settings.
    pub fn with_settings(store: Store, redactor: Redactor, settings: Settings) -> Recorder {
        Recorder {
            store,
            redactor,
            settings,
            profiles: HashMap::new(),
            resident: 0,
            seq: 0,
            revisions: HashMap::new(),
            dirty_revisions: HashSet::new(),
            digests: Digests::default(),
            windows: HashMap::new(),
            modes: HashMap::new(),
            recorded: 0,
            redactions: 0,
            changes: 0,
            versions: Arc::default(),
            shared: HashMap::new(),
        }
    }

    /// The change counters of profiles and the review queue.
    pub fn versions(&self) -> &Arc<Versions> {
        &self.versions
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The learning settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The mode of `workload` (read from the store on first use, then from memory).
    pub fn mode(&mut self, workload: &str) -> Result<Mode> {
        if let Some(m) = self.modes.get(workload) {
            return Ok(*m);
        }
        let m = self
            .store
            .mode(workload)?
            .unwrap_or(self.settings.default_mode);
        self.modes.insert(workload.to_string(), m);
        Ok(m)
    }

    /// Sets `workload`'s mode durably and applies it to the next event; returns the mode set
    /// before, if any.
    pub fn set_mode(&mut self, workload: &str, mode: Mode) -> Result<Option<Mode>> {
        let previous = self.store.mode(workload)?;
        self.store.set_mode(workload, mode)?;
        self.modes.insert(workload.to_string(), mode);
        Ok(previous)
    }

    /// Whether events may be scored: the default mode, or the mode of a workload seen (or set)
    /// since the agent started, is alert or enforce.
    pub fn any_alerting(&self) -> bool {
        let alerting = |m: &Mode| m.scores();
        alerting(&self.settings.default_mode) || self.modes.values().any(alerting)
    }

    /// Workloads with a mode set, sorted.
    pub fn modes(&self) -> Result<Vec<(String, Mode)>> {
        Ok(self.store.modes()?)
    }

    /// Every profile: stored, or learned since the last flush.
    pub fn profile_keys(&self) -> Result<Vec<ProfileKey>> {
        let mut keys: BTreeSet<ProfileKey> = self.store.keys()?.into_iter().collect();
        for (w, revs) in &self.profiles {
            for r in revs.keys() {
                keys.insert(ProfileKey {
                    workload: w.clone(),
                    revision: r.clone(),
                });
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// The freshest copy of a profile (memory, else the store).
    pub fn profile(&self, key: &ProfileKey) -> Result<Option<StoredProfile>> {
        if let Some(p) = self.resident(key) {
            return Ok(Some(p.stored.clone()));
        }
        Ok(self.store.load(key)?)
    }

    /// Stores an imported profile and its windows of activity (none: an empty set) durably;
    /// learning continues from them.
    pub fn import(
        &mut self,
        key: &ProfileKey,
        profile: StoredProfile,
        rates: Option<RateSamples>,
    ) -> Result<()> {
        let rates = rates.unwrap_or_else(|| RateSamples::new(DEFAULT_WINDOW_NS));
        self.store.save_batch([(key, &profile)])?;
        self.store.save_rates([(key, &rates)])?;
        self.store.flush()?;
        self.changes += 1;
        Versions::bump(&self.versions.profiles);
        if let Some(r) = self
            .profiles
            .get_mut(&key.workload)
            .and_then(|m| m.get_mut(&key.revision))
        {
            r.stored = profile;
            r.dirty = false;
            r.rates = rates;
            r.rates_dirty = false;
        }
        Ok(())
    }

    /// Adds an approved entry to the workload's latest profile, durably (and to the copy in
    /// memory, so learning keeps it). Returns the profile changed, or `None` when the workload
    /// has no profile.
    pub fn apply_approval(&mut self, approval: &Approval) -> Result<Option<ProfileKey>> {
        let Some((key, mut stored)) = self.latest_profile(&approval.workload)? else {
            return Ok(None);
        };
        if let Some(r) = self
            .profiles
            .get_mut(&key.workload)
            .and_then(|m| m.get_mut(&key.revision))
        {
            approval.apply(&mut r.stored.profile);
            stored = r.stored.clone();
            r.dirty = false;
        } else {
            approval.apply(&mut stored.profile);
        }
        self.store.save_batch([(&key, &stored)])?;
        self.store.flush()?;
        self.changes += 1;
        Versions::bump(&self.versions.profiles);
        Ok(Some(key))
    }

    /// Notes the program `event`'s workload ran, which may start a new revision.
    fn note_revision(&mut self, event: &Event) -> Result<()> {
        let w = &event.workload.id;
        if !self.revisions.contains_key(w)
            && let Some(r) = self.store.revisions(w)?
        {
            self.revisions.insert(w.clone(), r);
        }
        // The event's program: its path is digested when it is new to the workload, and at
        // every exec (an upgrade replaces a known program).
        let exe = event.exe.as_deref().unwrap_or("");
        let is_exec = matches!(event.detail, EventDetail::Exec { .. });
        let state = self.revisions.get_mut(w);
        let check = match &state {
            None => true,
            Some(r) => !exe.is_empty() && (is_exec || !r.executables.contains_key(exe)),
        };
        if check {
            let digest = if exe.is_empty() {
                crate::digest::UNREADABLE.to_string()
            } else {
                self.digests.of_path(exe)
            };
            match state {
                None => {
                    self.revisions
                        .insert(w.clone(), Revisions::start(exe, &digest, event.ts_ns));
                    self.dirty_revisions.insert(w.clone());
                }
                Some(r) => match r.observe(exe, &digest, event.ts_ns) {
                    Observed::Known => {}
                    Observed::Added => {
                        self.dirty_revisions.insert(w.clone());
                    }
                    Observed::NewRevision => {
                        tracing::info!(workload = %w, program = exe, revision = %r.current,
                            "a known program changed: learning a new revision");
                        self.dirty_revisions.insert(w.clone());
                    }
                },
            }
        }
        Ok(())
    }

    /// The revision state of `workload`.
    pub fn revisions(&mut self, workload: &str) -> Result<Option<Revisions>> {
        if let Some(r) = self.revisions.get(workload) {
            return Ok(Some(r.clone()));
        }
        Ok(self.store.revisions(workload)?)
    }

    /// Removes secrets from an event's arguments (counted in [`Recorder::redactions`]).
    pub fn redact(&mut self, event: &mut Event) {
        self.redactions += self.redactor.redact_event(event) as u64;
    }

    /// The profile of `workload`'s latest revision (the one that changed last), with its key,
    /// if any.
    pub fn latest_profile(&self, workload: &str) -> Result<Option<(ProfileKey, StoredProfile)>> {
        let mut best: Option<(ProfileKey, StoredProfile)> = None;
        for key in self
            .profile_keys()?
            .into_iter()
            .filter(|k| k.workload == workload)
        {
            if let Some(p) = self.profile(&key)?
                && best
                    .as_ref()
                    .is_none_or(|(_, b)| p.learning.last_change_ns() >= b.learning.last_change_ns())
            {
                best = Some((key, p));
            }
        }
        Ok(best)
    }

    /// Sets what other nodes learned of `workload` (`None`: nothing); scorers read their
    /// profiles again.
    pub fn set_shared(&mut self, workload: &str, profile: Option<Profile>) {
        if self.shared.get(workload).map(|p| p.as_ref()) == profile.as_ref() {
            return;
        }
        match profile {
            Some(p) => self.shared.insert(workload.to_string(), Arc::new(p)),
            None => self.shared.remove(workload),
        };
        self.changes += 1;
    }

    /// The profile to score and enforce `workload` with: its latest local profile merged with
    /// what other nodes learned of it (the merge is commutative, so every node gets the same).
    pub fn baseline_profile(&self, workload: &str) -> Result<Option<Profile>> {
        let local = self.latest_profile(workload)?.map(|(_, s)| s.profile);
        Ok(match (local, self.shared.get(workload)) {
            (Some(mut p), Some(other)) => {
                p.merge(other);
                Some(p)
            }
            (Some(p), None) => Some(p),
            (None, Some(other)) => Some(Profile::clone(other)),
            (None, None) => None,
        })
    }

    /// The windows of activity learned beside a profile (memory, else the store).
    pub fn rate_samples(&self, key: &ProfileKey) -> Result<Option<RateSamples>> {
        if let Some(p) = self.resident(key) {
            return Ok(Some(p.rates.clone()));
        }
        Ok(self.store.load_rates(key)?)
    }

    /// Records one event when its workload is learning. Returns whether it was recorded.
    pub fn record(&mut self, event: Event) -> Result<bool> {
        if self.mode(&event.workload.id)? != Mode::Learn {
            return Ok(false);
        }
        self.learn(event)
    }

    /// Records one event of a workload the caller knows is learning (its mode already looked
    /// up). Returns whether it was recorded.
    pub fn learn(&mut self, mut event: Event) -> Result<bool> {
        self.redact(&mut event);
        self.learn_redacted(event)
    }

    /// [`Recorder::learn`] for an event already passed through [`Recorder::redact`].
    pub fn learn_redacted(&mut self, mut event: Event) -> Result<bool> {
        if event.existing {
            // Found running at start-up: its timestamp is the process's start, possibly days
            // ago. It is observed now, and that is when learning it begins.
            event.ts_ns = event.ts_ns.max(now_ns());
        }
        // On Kubernetes the pod names the revision (pod-template hash, controller revision or
        // image digest); on a host, the workload's executable set does.
        let pod_revision = event
            .workload
            .k8s
            .clone()
            .filter(|m| !m.revision.is_empty());
        if pod_revision.is_none() {
            self.note_revision(&event)?;
        }
        let w = event.workload.id.as_str();
        let revision = match &pod_revision {
            Some(m) => m.revision.as_str(),
            None => self.revisions.get(w).map_or("", |r| r.current.as_str()),
        };
        let known = self
            .profiles
            .get(w)
            .is_some_and(|m| m.contains_key(revision));
        if !known {
            let key = ProfileKey::new(w, revision)?;
            let loaded = self
                .store
                .load(&key)
                .with_context(|| format!("loading the profile of {w}"))?;
            let stored = loaded.unwrap_or_else(|| StoredProfile {
                profile: Default::default(),
                learning: Learning::new(event.ts_ns),
            });
            let rates = self
                .store
                .load_rates(&key)
                .with_context(|| format!("loading the rate samples of {w}"))?
                .unwrap_or_else(|| RateSamples::new(DEFAULT_WINDOW_NS));
            self.profiles.entry(key.workload).or_default().insert(
                key.revision,
                Resident {
                    stored,
                    dirty: false,
                    used: 0,
                    rates,
                    rates_dirty: false,
                },
            );
            self.resident += 1;
        }
        let Some(res) = self.profiles.get_mut(w).and_then(|m| m.get_mut(revision)) else {
            return Ok(false);
        };
        let limits = Limits {
            max_entries: self.settings.max_entries,
            ..Limits::default()
        };
        let outcome = res.stored.record_bounded(&event, &limits);
        for wd in &outcome.widenings {
            tracing::warn!(workload = %w, %revision,
                "size bound ({} entries): {wd}; the profile is marked incomplete", limits.max_entries);
        }
        let windows = match self.windows.get_mut(w) {
            Some(l) => l,
            None => self
                .windows
                .entry(w.to_string())
                .or_insert_with(|| RateLearner::new(DEFAULT_WINDOW_NS)),
        };
        if windows.observe(&event, !outcome.new.is_empty(), &mut res.rates) {
            res.rates_dirty = true;
        }
        self.seq += 1;
        res.used = self.seq;
        res.dirty = true;
        self.recorded += 1;
        Versions::bump(&self.versions.profiles);
        Ok(true)
    }

    fn resident(&self, key: &ProfileKey) -> Option<&Resident> {
        self.profiles.get(&key.workload)?.get(&key.revision)
    }

    /// Writes every changed profile and revision state in batches and makes them durable,
    /// with the agent's sign of life; returns how many profiles were written.
    pub fn flush(&mut self) -> Result<usize> {
        let revs: Vec<String> = self.dirty_revisions.drain().collect();
        self.store.save_revisions(
            revs.iter()
                .filter_map(|w| self.revisions.get(w).map(|r| (w.as_str(), r))),
        )?;
        let mut keys = Vec::new();
        for (w, revs) in &self.profiles {
            for (r, res) in revs {
                if res.dirty {
                    keys.push(ProfileKey {
                        workload: w.clone(),
                        revision: r.clone(),
                    });
                }
            }
        }
        let items = keys
            .iter()
            .filter_map(|k| self.resident(k).map(|p| (k, &p.stored)));
        self.store.save_batch(items)?;
        let rates = keys.iter().filter_map(|k| {
            self.resident(k)
                .filter(|p| p.rates_dirty)
                .map(|p| (k, &p.rates))
        });
        self.store.save_rates(rates)?;
        self.store.set_last_alive_ns(now_ns())?;
        self.store.flush()?;
        for k in &keys {
            if let Some(r) = self
                .profiles
                .get_mut(&k.workload)
                .and_then(|m| m.get_mut(&k.revision))
            {
                r.dirty = false;
                r.rates_dirty = false;
            }
        }
        self.evict();
        Ok(keys.len())
    }

    /// Drops the least recently used clean profiles while more than [`MAX_RESIDENT`] are in
    /// memory, down to three quarters of it.
    fn evict(&mut self) {
        if self.resident <= MAX_RESIDENT {
            return;
        }
        let mut clean: Vec<(u64, String, String)> = self
            .profiles
            .iter()
            .flat_map(|(w, revs)| {
                revs.iter()
                    .filter(|(_, r)| !r.dirty)
                    .map(|(rev, r)| (r.used, w.clone(), rev.clone()))
            })
            .collect();
        clean.sort_unstable();
        let excess = self.resident - MAX_RESIDENT * 3 / 4;
        for (_, w, rev) in clean.into_iter().take(excess) {
            if let Some(m) = self.profiles.get_mut(&w) {
                m.remove(&rev);
                self.resident -= 1;
                if m.is_empty() {
                    self.profiles.remove(&w);
                }
            }
        }
    }

    /// Profiles held in memory.
    pub fn resident_profiles(&self) -> usize {
        self.resident
    }

    /// At start-up: when the agent was down longer than `threshold` since it was last alive,
    /// every profile still learning then is marked incomplete (it may have missed behaviour).
    /// Returns how many were marked.
    pub fn note_downtime(&mut self, now: u64, threshold: Duration) -> Result<usize> {
        let Some(last) = self.store.last_alive_ns()? else {
            return Ok(0);
        };
        let down = Duration::from_nanos(now.saturating_sub(last));
        if down <= threshold {
            return Ok(0);
        }
        let reason = format!(
            "the agent was down for {} while learning (from {} to {})",
            humantime::format_duration(Duration::from_secs(down.as_secs())),
            rfc3339(last),
            rfc3339(now)
        );
        let mut marked = Vec::new();
        for key in self.store.keys()? {
            let Some(mut p) = self.store.load(&key)? else {
                continue;
            };
            if p.learning.status(last, self.settings.stable_after) == Status::Learning {
                p.learning.mark_incomplete(reason.clone());
                marked.push((key, p));
            }
        }
        self.store.save_batch(marked.iter().map(|(k, p)| (k, p)))?;
        self.store.flush()?;
        if !marked.is_empty() {
            tracing::warn!(
                profiles = marked.len(),
                "{reason}: those profiles are marked incomplete"
            );
        }
        Ok(marked.len())
    }

    /// Switches each learning workload whose latest profile is complete and has had no new
    /// entry for the configured period to alert mode (when automatic switching is on).
    /// Returns the workloads switched.
    pub fn auto_alert(&mut self, now: u64) -> Result<Vec<String>> {
        let Some(after) = self.settings.auto_alert_after else {
            return Ok(Vec::new());
        };
        // The latest revision of each workload: the one that changed last.
        let mut latest: HashMap<String, StoredProfile> = HashMap::new();
        for key in self.profile_keys()? {
            let Some(p) = self.profile(&key)? else {
                continue;
            };
            let newer = latest
                .get(&key.workload)
                .is_none_or(|q| p.learning.last_change_ns() >= q.learning.last_change_ns());
            if newer {
                latest.insert(key.workload, p);
            }
        }
        let mut switched = Vec::new();
        for (w, p) in latest {
            let ready = p.learning.incomplete.is_empty() && p.learning.stable_for(now) >= after;
            if ready && self.mode(&w)? == Mode::Learn {
                self.set_mode(&w, Mode::Alert)?;
                tracing::info!(workload = %w, stable_for = %humantime::format_duration(
                    Duration::from_secs(p.learning.stable_for(now).as_secs())),
                    "profile stable: switched to alert mode");
                switched.push(w);
            }
        }
        switched.sort();
        Ok(switched)
    }
}

fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

#[cfg(test)]
mod tests;
