//! Keeps the kernel's enforcement maps in line with the workloads' modes and profiles: every
//! tick, each workload in enforce mode gets its latest profile compiled and, when the result
//! changed, written as a new generation beside the old one; one update of its `ENFORCE` entry
//! switches to it, then the old generation is removed. A workload that left enforce mode loses
//! its entry at once. A workload without a profile is never enforced: an empty allow-list would
//! kill everything it runs.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result};
use api::WorkloadEnforcement;
use learner_ebpf::{ENFORCE_CONNECT, ENFORCE_EXEC, EnforceEntry};
use profiles::mode::Mode;

use super::allow::AllowList;
use crate::{kernel::Probes, recorder::Recorder};

/// What the kernel enforces for one workload.
struct Enforced {
    cgroup_id: u64,
    generation: u32,
    list: Arc<AllowList>,
}

/// Maintains the enforcement maps.
pub struct Enforcer {
    cgroup_root: PathBuf,
    enforced: HashMap<String, Enforced>,
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
            dry_run: HashMap::new(),
            next_generation: 1,
            report: Vec::new(),
        }
    }

    /// The allow-list of `workload`: the one the kernel holds when it is enforced, the one it
    /// would hold in a dry run.
    pub fn allow_list(&self, workload: &str) -> Option<Arc<AllowList>> {
        self.enforced
            .get(workload)
            .map(|e| e.list.clone())
            .or_else(|| self.dry_run.get(workload).cloned())
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
        let gone: Vec<String> = self
            .enforced
            .keys()
            .filter(|w| !wanted.contains(w))
            .cloned()
            .collect();
        for w in gone {
            self.release(&w, probes)?;
            tracing::info!(workload = %w, "enforcement ended");
        }
        for w in wanted {
            report.push(self.sync_one(&w, recorder, probes)?);
        }
        self.report = report;
        Ok(())
    }

    /// Removes a workload's entry, then its allow-list.
    fn release(&mut self, workload: &str, probes: &mut Probes) -> Result<()> {
        let Some(old) = self.enforced.remove(workload) else {
            return Ok(());
        };
        probes.unenforce(old.cgroup_id)?;
        old.list
            .apply(probes, old.cgroup_id, old.generation, false)?;
        Ok(())
    }

    fn sync_one(
        &mut self,
        w: &str,
        recorder: &Recorder,
        probes: &mut Probes,
    ) -> Result<WorkloadEnforcement> {
        let profile = recorder.baseline_profile(w)?;
        let mut report = WorkloadEnforcement {
            workload: w.to_string(),
            state: String::new(),
            cgroup_id: 0,
            profile_entries: profile
                .as_ref()
                .map_or(0, |p| p.execs.len() + p.connects.len()),
            kernel_entries: 0,
            widened: 0,
            unchecked: 0,
        };
        let cgroup_id = self.cgroup_id(w);
        let (Some(profile), Some(cgroup_id)) = (profile.filter(|p| !p.is_empty()), cgroup_id)
        else {
            report.state = if cgroup_id.is_none() {
                "not enforced: no cgroup".into()
            } else {
                "not enforced: no profile".into()
            };
            self.release(w, probes)?;
            return Ok(report);
        };
        let list = AllowList::compile(&profile);
        report.cgroup_id = cgroup_id;
        report.kernel_entries = list.kernel_entries();
        report.widened = list.widened;
        report.unchecked = list.unchecked;
        report.state = "enforcing".into();
        if let Some(cur) = self.enforced.get(w)
            && cur.cgroup_id == cgroup_id
            && *cur.list == list
        {
            return Ok(report);
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        let new = Enforced {
            cgroup_id,
            generation,
            list: Arc::new(list),
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
        if let Some(old) = self.enforced.insert(w.to_string(), new) {
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
