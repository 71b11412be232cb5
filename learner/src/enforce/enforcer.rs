//! Keeps the kernel's enforcement maps in line with the workloads' modes and profiles: every
//! tick, each workload in enforce mode gets its latest profile compiled and, when the result
//! changed, written as a new generation beside the old one; one update of its `ENFORCE` entry
//! switches to it, then the old generation is removed. A workload that left enforce mode loses
//! its entry at once. A workload without a profile is never enforced: an empty allow-list would
//! kill everything it runs.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result};
use api::WorkloadEnforcement;
use learner_ebpf::{ENFORCE_CONNECT, ENFORCE_EXEC, EnforceEntry};
use profiles::mode::Mode;

use super::allow::AllowList;
use crate::{kernel::Probes, recorder::Recorder};

/// What the kernel enforces for one cgroup of a workload.
struct Enforced {
    cgroup_id: u64,
    generation: u32,
    list: Arc<AllowList>,
}

/// Maintains the enforcement maps.
pub struct Enforcer {
    cgroup_root: PathBuf,
    /// By unit: the workload id for a host workload (one cgroup, its path), `<id>#<cgroup id>`
    /// for each cgroup of a Kubernetes workload (one per replica on this node).
    enforced: HashMap<String, Enforced>,
    /// The allow-list each enforced workload's units share.
    lists: HashMap<String, Arc<AllowList>>,
    /// The cgroups events of each Kubernetes workload came from (its containers on this node).
    pod_cgroups: HashMap<String, BTreeSet<u64>>,
    /// Allow-lists of workloads in dry-run mode (never in the kernel).
    dry_run: HashMap<String, Arc<AllowList>>,
    next_generation: u32,
    report: Vec<WorkloadEnforcement>,
}

impl Enforcer {
    /// An enforcer for workloads named by their path under the cgroup2 mount `cgroup_root`.
    pub fn new(cgroup_root: &Path) -> Enforcer {
        Enforcer {
            cgroup_root: cgroup_root.to_path_buf(),
            enforced: HashMap::new(),
            lists: HashMap::new(),
            pod_cgroups: HashMap::new(),
            dry_run: HashMap::new(),
            next_generation: 1,
            report: Vec::new(),
        }
    }

    /// The allow-list of `workload`: the one the kernel holds when it is enforced, the one it
    /// would hold in a dry run.
    pub fn allow_list(&self, workload: &str) -> Option<Arc<AllowList>> {
        self.lists
            .get(workload)
            .or_else(|| self.dry_run.get(workload))
            .cloned()
    }

    /// Notes that an event of Kubernetes workload `workload` came from cgroup `cgroup_id`: in
    /// enforce mode, that cgroup is enforced too.
    pub fn note_cgroup(&mut self, workload: &str, cgroup_id: u64) {
        match self.pod_cgroups.get_mut(workload) {
            Some(ids) => {
                ids.insert(cgroup_id);
            }
            None => {
                self.pod_cgroups
                    .insert(workload.to_string(), BTreeSet::from([cgroup_id]));
            }
        }
    }

    /// The cgroups of `workload` and the unit key of each: a host workload's one cgroup (its
    /// path), or every cgroup a Kubernetes workload's events came from.
    fn units(&self, workload: &str) -> Vec<(String, Option<u64>)> {
        match self.pod_cgroups.get(workload) {
            Some(ids) if workload.starts_with("k8s:") => ids
                .iter()
                .map(|id| (format!("{workload}#{id}"), Some(*id)))
                .collect(),
            _ if workload.starts_with("k8s:") => vec![(workload.to_string(), None)],
            _ => vec![(workload.to_string(), self.cgroup_id(workload))],
        }
    }

    /// Whether any workload's allow-list is in the kernel.
    pub fn enforcing(&self) -> bool {
        !self.enforced.is_empty()
    }

    /// Per workload in enforce mode: what is enforced, as of the last [`Enforcer::sync`].
    pub fn report(&self) -> &[WorkloadEnforcement] {
        &self.report
    }

    fn cgroup_id(&self, workload: &str) -> Option<u64> {
        let dir = self.cgroup_root.join(workload.trim_start_matches('/'));
        crate::attribution::cgroup::cgroup_id(&dir).ok()
    }

    /// Brings the maps in line with the modes and the latest profiles.
    pub fn sync(&mut self, recorder: &Recorder, probes: &mut Probes) -> Result<()> {
        let modes = recorder.modes()?;
        let wanted: Vec<String> = modes
            .iter()
            .filter(|(_, m)| *m == Mode::Enforce)
            .map(|(w, _)| w.clone())
            .collect();
        self.dry_run.clear();
        let mut report = Vec::new();
        for (w, _) in modes.iter().filter(|(_, m)| *m == Mode::DryRun) {
            if let Some(profile) = recorder.baseline_profile(w)? {
                let list = AllowList::compile(&profile);
                report.push(WorkloadEnforcement {
                    workload: w.clone(),
                    state: "dry run: would block, does not".into(),
                    cgroup_id: 0,
                    profile_entries: profile.execs.len() + profile.connects.len(),
                    kernel_entries: 0,
                    widened: list.widened,
                    unchecked: list.unchecked,
                });
                self.dry_run.insert(w.clone(), Arc::new(list));
            }
        }
        let units: Vec<(String, String, Option<u64>)> = wanted
            .iter()
            .flat_map(|w| {
                self.units(w)
                    .into_iter()
                    .map(move |(unit, id)| (w.clone(), unit, id))
            })
            .collect();
        let gone: Vec<String> = self
            .enforced
            .keys()
            .filter(|u| !units.iter().any(|(_, unit, _)| unit == *u))
            .cloned()
            .collect();
        for u in gone {
            self.release(&u, probes)?;
            tracing::info!(unit = %u, "enforcement ended");
        }
        self.lists.retain(|w, _| wanted.contains(w));
        for w in &wanted {
            let profile = recorder.baseline_profile(w)?;
            let list = profile
                .as_ref()
                .filter(|p| !p.is_empty())
                .map(|p| Arc::new(AllowList::compile(p)));
            let entries = profile
                .as_ref()
                .map_or(0, |p| p.execs.len() + p.connects.len());
            match &list {
                Some(l) => {
                    // Units share one copy while it is unchanged.
                    if self.lists.get(w).is_none_or(|cur| **cur != **l) {
                        self.lists.insert(w.clone(), l.clone());
                    }
                }
                None => {
                    self.lists.remove(w);
                }
            }
            let list = self.lists.get(w).cloned();
            for (_, unit, cgroup_id) in units.iter().filter(|(uw, _, _)| uw == w) {
                report.push(self.sync_one(w, unit, *cgroup_id, list.clone(), entries, probes)?);
            }
        }
        self.report = report;
        Ok(())
    }

    /// Removes a unit's entry, then its allow-list.
    fn release(&mut self, unit: &str, probes: &mut Probes) -> Result<()> {
        let Some(old) = self.enforced.remove(unit) else {
            return Ok(());
        };
        probes.unenforce(old.cgroup_id)?;
        old.list
            .apply(probes, old.cgroup_id, old.generation, false)?;
        Ok(())
    }

    /// Brings one cgroup of workload `w` (the unit `unit`) in line with `list`.
    fn sync_one(
        &mut self,
        w: &str,
        unit: &str,
        cgroup_id: Option<u64>,
        list: Option<Arc<AllowList>>,
        profile_entries: usize,
        probes: &mut Probes,
    ) -> Result<WorkloadEnforcement> {
        let mut report = WorkloadEnforcement {
            workload: w.to_string(),
            state: String::new(),
            cgroup_id: 0,
            profile_entries,
            kernel_entries: 0,
            widened: 0,
            unchecked: 0,
        };
        let (Some(list), Some(cgroup_id)) = (list, cgroup_id) else {
            report.state = if cgroup_id.is_none() {
                "not enforced: no cgroup".into()
            } else {
                "not enforced: no profile".into()
            };
            self.release(unit, probes)?;
            return Ok(report);
        };
        report.cgroup_id = cgroup_id;
        report.kernel_entries = list.kernel_entries();
        report.widened = list.widened;
        report.unchecked = list.unchecked;
        report.state = "enforcing".into();
        if let Some(cur) = self.enforced.get(unit)
            && cur.cgroup_id == cgroup_id
            && *cur.list == *list
        {
            return Ok(report);
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        let new = Enforced {
            cgroup_id,
            generation,
            list,
        };
        new.list
            .apply(probes, cgroup_id, generation, true)
            .with_context(|| format!("loading the allow-list of {w}"))?;
        probes.enforce(
            cgroup_id,
            EnforceEntry {
                flags: ENFORCE_EXEC | ENFORCE_CONNECT,
                generation,
            },
        )?;
        tracing::info!(workload = %w, cgroup_id, generation,
            entries = new.list.kernel_entries(), "allow-list in force");
        if let Some(old) = self.enforced.insert(unit.to_string(), new) {
            if old.cgroup_id != cgroup_id {
                probes.unenforce(old.cgroup_id)?;
            }
            old.list
                .apply(probes, old.cgroup_id, old.generation, false)?;
        }
        Ok(report)
    }

    /// Ends all enforcement (the agent stops).
    pub fn release_all(&mut self, probes: &mut Probes) -> Result<()> {
        let all: Vec<String> = self.enforced.keys().cloned().collect();
        for w in all {
            self.release(&w, probes)?;
        }
        Ok(())
    }
}
