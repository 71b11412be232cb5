//! What the API needs from an agent. The running agent implements [`Agent`] over its live
//! recorder; the CLI implements it over the store when no agent runs; tests use a fake.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use profiles::{
    evidence::{EvidenceQuery, EvidenceStats},
    mode::Mode,
    rates::RateSamples,
    review,
    store::{ProfileKey, StoredProfile},
};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Learning settings that decide how progress is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Mode of workloads with none set.
    pub default_mode: Mode,
    /// A profile with no new entry for this long is stable.
    #[serde(with = "secs", rename = "stable_after_secs")]
    pub stable_after: Duration,
    /// A stable learning workload switches to alert by itself after this long without change.
    #[serde(with = "opt_secs", rename = "auto_alert_after_secs")]
    pub auto_alert_after: Option<Duration>,
    /// Entries a profile may hold before patterns are widened.
    pub max_entries: usize,
}

/// The running agent (absent when the CLI reads the store itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRuntime {
    /// The agent's process id.
    pub pid: u32,
    /// When it started (Unix-epoch nanoseconds).
    pub started_ns: u64,
    /// The store directory.
    pub store: String,
    /// Events recorded into profiles.
    pub recorded: u64,
    /// Secrets removed from argv before recording.
    pub redactions: u64,
    /// Events that could not be recorded.
    pub not_recorded: u64,
    /// The kernel's statistics (seen / emitted / deduplicated / dropped, per kind and total).
    pub kernel: serde_json::Value,
    /// Scoring and alert delivery since the agent started.
    #[serde(default)]
    pub alerts: AlertCounters,
    /// Blocking in force.
    #[serde(default)]
    pub enforcement: EnforcementStatus,
    /// The ring buffer's fill.
    #[serde(default)]
    pub ring: RingUse,
    /// Events not kept in the evidence store (its writer fell behind, or the store failed).
    #[serde(default)]
    pub evidence_dropped: u64,
    /// The Elasticsearch export of the evidence, when configured (its counters: `sent`,
    /// `duplicates`, `rejected`, `failed_attempts`, `last_error`, `cursor`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch: Option<serde_json::Value>,
    /// The Kubernetes integration, when on (pods and namespaces known, events attributed,
    /// held and `unattributed`, watch errors, mode changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<serde_json::Value>,
}

/// How full the kernel's ring buffer is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingUse {
    /// Its size.
    pub capacity_bytes: u64,
    /// Bytes written and not yet read, sampled before the latest read.
    pub pending_bytes: u64,
    /// The most seen pending since the agent started.
    pub max_pending_bytes: u64,
}

/// One audited action: an automated response to an alert, or a change made through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Who acted: `agent` for automated responses, the API token's name (`root` over the unix
    /// socket) for changes made through the API.
    pub actor: String,
    /// The workload acted on.
    pub workload: String,
    /// The action (`kill`, `set-mode`, `approve`, `reject`, `import`, `acknowledge`, ...), its
    /// target and outcome.
    pub action: scorer::alert::ActionTaken,
    /// The key of the alert that caused it, if one did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alert_key: String,
    /// That alert's summary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alert_summary: String,
}

impl AuditRecord {
    /// A change `actor` made to `workload` through the API, now.
    pub fn change(actor: &str, workload: &str, action: &str, target: String, at_ns: u64) -> Self {
        AuditRecord {
            actor: actor.into(),
            workload: workload.into(),
            action: scorer::alert::ActionTaken {
                action: action.into(),
                target,
                outcome: "done".into(),
                at_ns,
            },
            alert_key: String::new(),
            alert_summary: String::new(),
        }
    }
}

/// Blocking in force: the kernel's counters and each workload in enforce mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementStatus {
    /// What the kernel checked and blocked since the agent started.
    pub kernel: EnforceCounters,
    /// Each workload in enforce mode.
    pub workloads: Vec<WorkloadEnforcement>,
    /// The last canary run, if one ran.
    #[serde(default)]
    pub canary: Option<CanaryReport>,
    /// Canary runs that failed since the agent started.
    #[serde(default)]
    pub canary_failures: u64,
}

/// The result of an enforcement canary run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryReport {
    /// When it ran, Unix-epoch nanoseconds.
    pub at_ns: u64,
    /// Both blocks happened.
    pub ok: bool,
    /// The kernel killed the canary's forbidden exec.
    pub exec_killed: bool,
    /// The kernel refused the canary's forbidden connect.
    pub connect_refused: bool,
    /// What happened, in words.
    pub detail: String,
}

/// The kernel's enforcement counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforceCounters {
    /// Execs of enforcing workloads checked.
    pub exec_checked: u64,
    /// Execs killed with SIGKILL.
    pub exec_killed: u64,
    /// Execs the kernel could not check (relative paths) and let through.
    pub exec_unchecked: u64,
    /// Connects of enforcing workloads checked.
    pub connect_checked: u64,
    /// Connects refused with EPERM.
    pub connect_denied: u64,
}

/// One workload's enforcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadEnforcement {
    /// Workload id.
    pub workload: String,
    /// `enforcing`, or why not (`not enforced: no profile`, `not enforced: no cgroup`).
    pub state: String,
    /// cgroup id the kernel maps are keyed by (0 when not enforcing).
    pub cgroup_id: u64,
    /// Programs and destinations in the profile.
    pub profile_entries: usize,
    /// Entries loaded in the kernel maps for it.
    pub kernel_entries: usize,
    /// Profile entries the kernel checks more broadly than the profile states them.
    pub widened: usize,
    /// Profile entries the kernel does not check (relative paths, unix sockets).
    pub unchecked: usize,
}

/// Scoring and alert delivery counts of the running agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCounters {
    /// Events of alerting workloads scored.
    pub scored: u64,
    /// New alerts raised.
    pub raised: u64,
    /// Repeats counted on alerts already raised.
    pub repeats: u64,
    /// Alert deliveries a receiver took (webhook, Alertmanager).
    pub delivered: u64,
    /// Failed delivery attempts (each is retried).
    pub failed: u64,
    /// Alerts waiting in the outbox for delivery.
    pub pending: u64,
}

/// Change counters of the agent's state: a cached answer built from a resource stays valid while
/// its counter has not moved.
#[derive(Debug, Default)]
pub struct Versions {
    /// Moves whenever any profile changes (an event recorded, an import, an approval).
    pub profiles: std::sync::atomic::AtomicU64,
    /// Moves whenever the review queue changes.
    pub reviews: std::sync::atomic::AtomicU64,
}

impl Versions {
    /// Notes a change of `counter`.
    pub fn bump(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// The value of `counter` now.
    pub fn read(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The agent's state as the API sees it. Methods are synchronous and quick: they read memory or
/// the embedded store.
pub trait Agent: Send + Sync + 'static {
    /// Learning settings.
    fn settings(&self) -> Settings;
    /// The running agent, or `None` when the store is read with no agent.
    fn runtime(&self) -> Option<AgentRuntime>;
    /// Workloads with a mode set, sorted.
    fn modes(&self) -> Result<Vec<(String, Mode)>, ApiError>;
    /// Sets (durably) and applies a workload's mode; returns the mode set before, if any.
    fn set_mode(&self, workload: &str, mode: Mode) -> Result<Option<Mode>, ApiError>;
    /// Whether `workload` exists beyond the store (on a host: its cgroup exists).
    fn workload_exists(&self, workload: &str) -> bool;
    /// On Kubernetes: workload → the annotation that decides its mode. The API does not set
    /// those modes; the annotation does.
    fn mode_annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    /// A NetworkPolicy for `workload` from its latest profile, selecting `selector` (default:
    /// the labels of its pods).
    fn network_policy(
        &self,
        _workload: &str,
        _selector: Option<BTreeMap<String, String>>,
    ) -> Result<crate::PolicyAnswer, ApiError> {
        Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "network policies are not available from this agent",
        ))
    }
    /// The namespace's NetworkPolicies checked against the connections observed.
    fn check_network_policies(&self, _namespace: &str) -> Result<crate::PolicyCheck, ApiError> {
        Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "checking network policies needs the agent running on Kubernetes ([kubernetes] \
             enabled)",
        ))
    }
    /// Every profile key (stored or being learned), sorted.
    fn profile_keys(&self) -> Result<Vec<ProfileKey>, ApiError>;
    /// The freshest copy of a profile.
    fn profile(&self, key: &ProfileKey) -> Result<Option<StoredProfile>, ApiError>;
    /// The windows of activity learned beside a profile, if any.
    fn rate_samples(&self, _key: &ProfileKey) -> Result<Option<RateSamples>, ApiError> {
        Ok(None)
    }
    /// Stores (durably) an imported profile with its windows of activity, replacing any with
    /// the same key.
    fn import(
        &self,
        key: &ProfileKey,
        profile: StoredProfile,
        rates: Option<RateSamples>,
    ) -> Result<(), ApiError>;
    /// Every stored alert (aggregated: one per deviation, with count and first / last seen).
    fn alerts(&self) -> Result<Vec<scorer::alert::Alert>, ApiError> {
        Ok(Vec::new())
    }
    /// The audit log, oldest first.
    fn audit(&self) -> Result<Vec<AuditRecord>, ApiError> {
        Ok(Vec::new())
    }
    /// Appends a record to the audit log (durably).
    fn record_audit(&self, _record: AuditRecord) -> Result<(), ApiError> {
        Err(ApiError::internal("this agent keeps no audit log"))
    }
    /// Acknowledges the stored alert `key` (durably); returns it acknowledged.
    fn acknowledge(
        &self,
        key: &str,
        _ack: scorer::alert::Ack,
    ) -> Result<scorer::alert::Alert, ApiError> {
        Err(ApiError::not_found(format!("no alert {key:?}")))
    }
    /// New alerts as the agent raises them, for the live stream; `None` when no
    /// agent runs.
    fn subscribe_alerts(&self) -> Option<tokio::sync::broadcast::Receiver<scorer::alert::Alert>> {
        None
    }
    /// Proposed allow-list entries, filtered (see [`profiles::review::list`] for the order).
    fn reviews(
        &self,
        _workload: Option<&str>,
        _state: Option<review::State>,
    ) -> Result<Vec<review::Proposal>, ApiError> {
        Ok(Vec::new())
    }
    /// One proposal.
    fn review(&self, id: &str) -> Result<review::Proposal, ApiError> {
        Err(review::ReviewError::NotFound { id: id.into() }.into())
    }
    /// Approves a proposal (as its exact entry, or as `pattern`) and adds the entry to the
    /// workload's profile at once: it stops alerting, and in enforce mode the kernel allows it
    /// at the next sync.
    fn approve(
        &self,
        id: &str,
        _reviewer: &str,
        _comment: &str,
        _pattern: Option<&str>,
    ) -> Result<review::Approval, ApiError> {
        Err(review::ReviewError::NotFound { id: id.into() }.into())
    }
    /// Rejects a proposal: it keeps alerting (and is blocked in enforce mode).
    fn reject(
        &self,
        id: &str,
        _reviewer: &str,
        _comment: &str,
    ) -> Result<review::Proposal, ApiError> {
        Err(review::ReviewError::NotFound { id: id.into() }.into())
    }
    /// Approvals in effect, oldest first.
    fn approvals(&self, _workload: Option<&str>) -> Result<Vec<review::Approval>, ApiError> {
        Ok(Vec::new())
    }
    /// Events kept in the evidence store that match `query`, oldest first.
    fn events(&self, _query: &EvidenceQuery) -> Result<Vec<profiles::Event>, ApiError> {
        Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "this agent keeps no evidence store",
        ))
    }
    /// What the evidence store holds, if there is one.
    fn evidence_stats(&self) -> Result<Option<EvidenceStats>, ApiError> {
        Ok(None)
    }
    /// Cardholder-data path patterns of the PCI-DSS access report.
    fn pci_paths(&self) -> Vec<String> {
        Vec::new()
    }
    /// The agent's change counters, when it keeps them (answers are then cached while they
    /// hold still).
    fn versions(&self) -> Option<&Versions> {
        None
    }
    /// Now, in Unix-epoch nanoseconds.
    fn now_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| d.as_secs()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}
