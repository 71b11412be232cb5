//! Workload summaries: mode, where it came from, and each revision's learning progress.

use std::collections::BTreeMap;

use profiles::{
    learning::Status,
    mode::Mode,
    store::{ProfileKey, StoredProfile},
};
use serde::{Deserialize, Serialize};

use crate::{Agent, ApiError, Settings};

/// Where a workload's mode comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeSource {
    /// Set through the CLI or API (kept in the store).
    Set,
    /// The agent's default mode.
    Default,
    /// A Kubernetes annotation (`baseliner.io/mode` on the pod or its namespace); see
    /// `mode_annotation`.
    Annotation,
}

/// Entry counts of a profile by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryCounts {
    /// Executed programs.
    pub execs: usize,
    /// Parent → child starts.
    pub lineage: usize,
    /// Files.
    pub files: usize,
    /// Connect destinations.
    pub connects: usize,
    /// Listening addresses.
    pub listens: usize,
    /// All of them.
    pub total: usize,
}

/// Learning progress of one revision of a workload's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionSummary {
    /// The revision.
    pub revision: String,
    /// learning / stable / incomplete.
    pub status: Status,
    /// Seconds since the last new entry.
    pub stable_for_secs: u64,
    /// How far towards stable, 0.0–1.0 (stable-for over the stable period).
    pub progress: f64,
    /// When learning started (Unix-epoch nanoseconds).
    pub started_ns: u64,
    /// When the profile last gained an entry (Unix-epoch nanoseconds).
    pub last_change_ns: u64,
    /// Why the profile may miss behaviour (empty unless incomplete).
    pub incomplete: Vec<String>,
    /// Entries by kind.
    pub entries: EntryCounts,
}

/// A workload: its mode and its profiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSummary {
    /// Workload id (on a host, the cgroup path).
    pub workload: String,
    /// Its mode.
    pub mode: Mode,
    /// Where the mode comes from.
    pub mode_source: ModeSource,
    /// On Kubernetes, the annotation that decides the mode ("pod annotation baseliner.io/mode
    /// on shop/web-1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_annotation: Option<String>,
    /// Its profile revisions, sorted.
    pub revisions: Vec<RevisionSummary>,
}

impl EntryCounts {
    /// The counts of `p`'s profile.
    pub fn of(p: &StoredProfile) -> EntryCounts {
        let p = &p.profile;
        EntryCounts {
            execs: p.execs.len(),
            lineage: p.lineage.len(),
            files: p.files.len(),
            connects: p.connects.len(),
            listens: p.listens.len(),
            total: p.len(),
        }
    }
}

impl RevisionSummary {
    /// The progress of `p` at `now_ns` under `settings`.
    pub fn of(revision: &str, p: &StoredProfile, now_ns: u64, settings: &Settings) -> Self {
        let l = &p.learning;
        let stable_for = l.stable_for(now_ns);
        let period = settings.stable_after.as_secs_f64();
        let progress = if period <= 0.0 {
            1.0
        } else {
            (stable_for.as_secs_f64() / period).min(1.0)
        };
        RevisionSummary {
            revision: revision.to_string(),
            status: l.status(now_ns, settings.stable_after),
            stable_for_secs: stable_for.as_secs(),
            progress: (progress * 1000.0).round() / 1000.0,
            started_ns: l.started_ns,
            last_change_ns: l.last_change_ns(),
            incomplete: l.incomplete.clone(),
            entries: EntryCounts::of(p),
        }
    }
}

/// Every workload the agent knows (with a profile or a mode), sorted by id.
pub fn workloads(agent: &dyn Agent) -> Result<Vec<WorkloadSummary>, ApiError> {
    collect(agent, None)
}

/// One workload, or `None` when the agent has neither a profile nor a mode for it.
pub fn workload(agent: &dyn Agent, id: &str) -> Result<Option<WorkloadSummary>, ApiError> {
    Ok(collect(agent, Some(id))?.pop())
}

fn collect(agent: &dyn Agent, only: Option<&str>) -> Result<Vec<WorkloadSummary>, ApiError> {
    let settings = agent.settings();
    let now = agent.now_ns();
    let wanted = |id: &str| only.is_none_or(|o| o == id);
    let new = |id: &str| WorkloadSummary {
        workload: id.to_string(),
        mode: settings.default_mode,
        mode_source: ModeSource::Default,
        mode_annotation: None,
        revisions: Vec::new(),
    };
    let mut by_id: BTreeMap<String, WorkloadSummary> = BTreeMap::new();
    let modes: BTreeMap<String, Mode> = agent.modes()?.into_iter().collect();
    for (id, &mode) in &modes {
        if wanted(id) {
            let w = by_id.entry(id.clone()).or_insert_with(|| new(id));
            w.mode = mode;
            w.mode_source = ModeSource::Set;
        }
    }
    for key in agent.profile_keys()? {
        if !wanted(&key.workload) {
            continue;
        }
        if let Some(p) = agent.profile(&key)? {
            let summary = RevisionSummary::of(&key.revision, &p, now, &settings);
            by_id
                .entry(key.workload.clone())
                .or_insert_with(|| new(&key.workload))
                .revisions
                .push(summary);
        }
    }
    for (id, annotation) in agent.mode_annotations() {
        if wanted(&id) {
            let w = by_id.entry(id.clone()).or_insert_with(|| new(&id));
            if let Some(m) = modes.get(&id) {
                w.mode = *m;
            }
            w.mode_source = ModeSource::Annotation;
            w.mode_annotation = Some(annotation);
        }
    }
    Ok(by_id.into_values().collect())
}

/// The revision to use for `workload`: the one asked for, or its latest (the most recently
/// changed profile).
pub fn pick_revision(
    agent: &dyn Agent,
    workload: &str,
    revision: Option<&str>,
) -> Result<ProfileKey, ApiError> {
    if let Some(r) = revision {
        return Ok(ProfileKey::new(workload, r)?);
    }
    let mut best: Option<(u64, ProfileKey)> = None;
    for key in agent.profile_keys()? {
        if key.workload != workload {
            continue;
        }
        if let Some(p) = agent.profile(&key)? {
            let t = p.learning.last_change_ns();
            if best.as_ref().is_none_or(|(bt, _)| t >= *bt) {
                best = Some((t, key));
            }
        }
    }
    best.map(|(_, k)| k).ok_or_else(|| {
        ApiError::not_found(format!(
            "no profile for workload {workload:?} (`baseliner status` lists the workloads)"
        ))
    })
}

/// `GET /v1/status`: the agent, its settings and every workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The running agent; `None` when the store was read with no agent running.
    pub agent: Option<crate::AgentRuntime>,
    /// Learning settings.
    pub settings: Settings,
    /// Every known workload.
    pub workloads: Vec<WorkloadSummary>,
}

/// The answer to a mode change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeChange {
    /// The workload.
    pub workload: String,
    /// Its mode now.
    pub mode: Mode,
    /// The mode set before, if one was.
    pub previous: Option<Mode>,
}

/// One stored profile in `GET /v1/profiles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileListing {
    /// Workload id.
    pub workload: String,
    /// Learning progress and entry counts of this revision.
    #[serde(flatten)]
    pub summary: RevisionSummary,
}
