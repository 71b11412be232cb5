//! The agent's state as the API sees it ([`api::Agent`]): the recorder, shared with the event
//! loop, plus what the running agent reports about itself. With no agent running, the CLI
//! builds the same over the store, without a runtime.

use std::{
    collections::HashMap,
    path::{Component, Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use api::{Agent, AgentRuntime, ApiError, Settings};
use profiles::{
    evidence::{EvidenceQuery, EvidenceStats, EvidenceStore},
    mode::Mode,
    rates::RateSamples,
    review,
    store::{ProfileKey, StoredProfile},
};

use scorer::alert::{Ack, Alert};

use crate::recorder::{Recorder, now_ns};

/// The recorder as shared by the event loop and the API.
pub type SharedRecorder = Arc<Mutex<Recorder>>;

/// The agent behind the API.
pub struct Control {
    recorder: SharedRecorder,
    runtime: Option<Arc<Mutex<AgentRuntime>>>,
    cgroup_mount: Option<PathBuf>,
    alerts: Option<AlertStream>,
    evidence: Option<SharedEvidence>,
    pci_paths: Vec<String>,
    versions: Arc<api::Versions>,
    /// On Kubernetes: workload → the annotation that decides its mode.
    mode_sources: Option<ModeSources>,
    /// On Kubernetes: the node's pods and the API server.
    kube: Option<KubeContext>,
}

/// What the API needs of the Kubernetes integration.
#[derive(Clone)]
pub struct KubeContext {
    /// The node's pods and the namespaces.
    pub cache: Arc<std::sync::RwLock<crate::kubernetes::pods::PodCache>>,
    /// The API server.
    pub client: kube::Client,
}

/// Workload → the annotation that decides its mode, as the Kubernetes watches keep it.
pub type ModeSources = Arc<std::sync::RwLock<std::collections::BTreeMap<String, String>>>;

/// The evidence store as shared by the event loop (which appends) and the API (which reads).
pub type SharedEvidence = Arc<Mutex<EvidenceStore>>;

/// The sending side of the live alert stream.
pub type AlertStream = tokio::sync::broadcast::Sender<Alert>;

/// The store tree of alert acknowledgements, by alert key. They are kept apart from the alerts
/// themselves, which the event loop rewrites as repeats come in.
pub const ACKS_TREE: &str = "alert_acks";

impl Control {
    /// Over `recorder`; `runtime` is `None` when no agent runs (the CLI reading the store).
    pub fn new(recorder: SharedRecorder, runtime: Option<Arc<Mutex<AgentRuntime>>>) -> Control {
        let versions = recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .versions()
            .clone();
        Control {
            versions,
            recorder,
            runtime,
            cgroup_mount: crate::attribution::cgroup::cgroup2_mount().ok(),
            alerts: None,
            evidence: None,
            pci_paths: Vec::new(),
            mode_sources: None,
            kube: None,
        }
    }

    /// On Kubernetes: pods for network policies, and the API server to read policies from.
    pub fn with_kubernetes(mut self, kube: KubeContext) -> Control {
        self.kube = Some(kube);
        self
    }

    /// On Kubernetes: modes decided by annotations, which the API then refuses to set.
    pub fn with_mode_sources(mut self, sources: ModeSources) -> Control {
        self.mode_sources = Some(sources);
        self
    }

    /// Answers evidence queries from `evidence`; `pci_paths` are the cardholder-data path
    /// patterns of the PCI-DSS report.
    pub fn with_evidence(mut self, evidence: SharedEvidence, pci_paths: Vec<String>) -> Control {
        self.evidence = Some(evidence);
        self.pci_paths = pci_paths;
        self
    }

    fn evidence(&self) -> Option<MutexGuard<'_, EvidenceStore>> {
        self.evidence
            .as_ref()
            .map(|e| e.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Streams the alerts sent on `tx` to API clients.
    pub fn with_alert_stream(mut self, tx: AlertStream) -> Control {
        self.alerts = Some(tx);
        self
    }

    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        // A panic while holding the lock leaves the recorder usable: every method keeps it
        // consistent between statements that can fail.
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::internal(format!("{e:#}"))
}

/// The cgroup directory a host workload id names, when it is a plain path under the mount.
fn cgroup_dir(mount: &Path, workload: &str) -> Option<PathBuf> {
    let rel = Path::new(workload.strip_prefix('/')?);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| mount.join(rel))
}

impl Agent for Control {
    fn settings(&self) -> Settings {
        self.recorder().settings().clone()
    }

    fn runtime(&self) -> Option<AgentRuntime> {
        self.runtime
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn modes(&self) -> Result<Vec<(String, Mode)>, ApiError> {
        self.recorder().modes().map_err(internal)
    }

    fn set_mode(&self, workload: &str, mode: Mode) -> Result<Option<Mode>, ApiError> {
        self.recorder().set_mode(workload, mode).map_err(internal)
    }

    fn mode_annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.mode_sources
            .as_ref()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    fn network_policy(
        &self,
        workload: &str,
        selector: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<api::PolicyAnswer, ApiError> {
        let (_, stored) = self
            .recorder()
            .latest_profile(workload)
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found(format!("{workload} has no profile yet")))?;
        let empty = crate::kubernetes::pods::PodCache::new();
        let cache = self
            .kube
            .as_ref()
            .map(|k| k.cache.read().unwrap_or_else(|e| e.into_inner()));
        let cache = cache.as_deref().unwrap_or(&empty);
        use crate::kubernetes::policy::{PolicyError, policy_for};
        policy_for(workload, &stored.profile, selector, cache).map_err(|e| match e {
            PolicyError::Invalid(_) => ApiError::bad_request(e.to_string()),
            _ => ApiError::conflict(e.to_string()),
        })
    }

    fn check_network_policies(&self, namespace: &str) -> Result<api::PolicyCheck, ApiError> {
        let unavailable = |why: String| ApiError::new(api::StatusCode::SERVICE_UNAVAILABLE, why);
        let Some(kube) = &self.kube else {
            return Err(unavailable(
                "checking network policies needs the agent running on Kubernetes ([kubernetes] \
                 enabled)"
                    .into(),
            ));
        };
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| unavailable("no runtime to reach the API server from".into()))?;
        let api: kube::Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
            kube::Api::namespaced(kube.client.clone(), namespace);
        // The API's threads may wait: this call is rare and the event loop runs elsewhere.
        let policies = tokio::task::block_in_place(|| {
            handle.block_on(api.list(&kube::api::ListParams::default()))
        })
        .map_err(|e| unavailable(format!("listing the NetworkPolicies of {namespace}: {e}")))?;
        let cache = kube.cache.read().unwrap_or_else(|e| e.into_inner());
        let mut profiles = std::collections::BTreeMap::new();
        let r = self.recorder();
        for pod in cache.pods().filter(|p| p.namespace == namespace) {
            for c in &pod.containers {
                let id = crate::kubernetes::identity::workload_id(&c.meta);
                if let Some((_, p)) = r.latest_profile(&id).map_err(internal)? {
                    profiles.insert(id, p.profile);
                }
            }
        }
        drop(r);
        Ok(crate::kubernetes::policy::check(
            namespace,
            &policies.items,
            &profiles,
            &cache,
        ))
    }

    fn workload_exists(&self, workload: &str) -> bool {
        self.cgroup_mount
            .as_deref()
            .and_then(|m| cgroup_dir(m, workload))
            .is_some_and(|d| d.is_dir())
    }

    fn profile_keys(&self) -> Result<Vec<ProfileKey>, ApiError> {
        self.recorder().profile_keys().map_err(internal)
    }

    fn profile(&self, key: &ProfileKey) -> Result<Option<StoredProfile>, ApiError> {
        self.recorder().profile(key).map_err(internal)
    }

    fn rate_samples(&self, key: &ProfileKey) -> Result<Option<RateSamples>, ApiError> {
        self.recorder().rate_samples(key).map_err(internal)
    }

    fn import(
        &self,
        key: &ProfileKey,
        profile: StoredProfile,
        rates: Option<RateSamples>,
    ) -> Result<(), ApiError> {
        self.recorder()
            .import(key, profile, rates)
            .map_err(internal)
    }

    fn alerts(&self) -> Result<Vec<Alert>, ApiError> {
        let r = self.recorder();
        let store = r.store();
        let mut alerts: Vec<Alert> = store.all_json(crate::alerting::ALERTS_TREE)?;
        let acks: Vec<(String, Ack)> = store.all_json(ACKS_TREE)?;
        let acks: HashMap<String, Ack> = acks.into_iter().collect();
        for a in &mut alerts {
            if let Some(ack) = acks.get(&a.key) {
                a.ack = Some(ack.clone());
            }
        }
        Ok(alerts)
    }

    fn audit(&self) -> Result<Vec<api::AuditRecord>, ApiError> {
        Ok(crate::respond::audit::all(self.recorder().store())?)
    }

    fn record_audit(&self, record: api::AuditRecord) -> Result<(), ApiError> {
        let r = self.recorder();
        crate::respond::audit::append(r.store(), &record)?;
        r.store().flush()?;
        Ok(())
    }

    fn acknowledge(&self, key: &str, ack: Ack) -> Result<Alert, ApiError> {
        let r = self.recorder();
        let store = r.store();
        let mut alert: Alert = store
            .get_json(crate::alerting::ALERTS_TREE, key.as_bytes())?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no alert {key:?} (`GET /v1/alerts` lists the alerts and their keys)"
                ))
            })?;
        if let Some((_, before)) = store.get_json::<(String, Ack)>(ACKS_TREE, key.as_bytes())? {
            return Err(ApiError::conflict(format!(
                "alert {key:?} was already acknowledged by {}",
                before.by
            )));
        }
        store.put_json(ACKS_TREE, key.as_bytes(), &(key, &ack))?;
        store.flush()?;
        alert.ack = Some(ack);
        Ok(alert)
    }

    fn reviews(
        &self,
        workload: Option<&str>,
        state: Option<review::State>,
    ) -> Result<Vec<review::Proposal>, ApiError> {
        Ok(review::list(self.recorder().store(), workload, state)?)
    }

    fn review(&self, id: &str) -> Result<review::Proposal, ApiError> {
        Ok(review::get(self.recorder().store(), id)?)
    }

    fn approve(
        &self,
        id: &str,
        reviewer: &str,
        comment: &str,
        pattern: Option<&str>,
    ) -> Result<review::Approval, ApiError> {
        let mut r = self.recorder();
        let proposal = review::get(r.store(), id)?;
        if r.latest_profile(&proposal.workload)
            .map_err(internal)?
            .is_none()
        {
            return Err(ApiError::conflict(format!(
                "workload {:?} has no profile to add the entry to",
                proposal.workload
            )));
        }
        let approval = review::approve(r.store(), id, reviewer, comment, pattern, now_ns())?;
        api::Versions::bump(&self.versions.reviews);
        r.apply_approval(&approval).map_err(internal)?;
        tracing::info!(workload = %approval.workload, entry = %approval.entry, %reviewer,
            "allow-list entry approved");
        Ok(approval)
    }

    fn reject(
        &self,
        id: &str,
        reviewer: &str,
        comment: &str,
    ) -> Result<review::Proposal, ApiError> {
        let r = self.recorder();
        let p = review::reject(r.store(), id, reviewer, comment, now_ns())?;
        api::Versions::bump(&self.versions.reviews);
        tracing::info!(workload = %p.workload, entry = %p.entry, %reviewer,
            "allow-list entry rejected");
        Ok(p)
    }

    fn approvals(&self, workload: Option<&str>) -> Result<Vec<review::Approval>, ApiError> {
        Ok(review::approvals(self.recorder().store(), workload)?)
    }

    fn events(&self, query: &EvidenceQuery) -> Result<Vec<profiles::Event>, ApiError> {
        match self.evidence() {
            Some(e) => Ok(e.query(query)?),
            None => Err(ApiError::new(
                api::StatusCode::SERVICE_UNAVAILABLE,
                "the evidence store is off ([evidence] enabled = false)",
            )),
        }
    }

    fn evidence_stats(&self) -> Result<Option<EvidenceStats>, ApiError> {
        Ok(self.evidence().map(|e| e.stats()).transpose()?)
    }

    fn pci_paths(&self) -> Vec<String> {
        self.pci_paths.clone()
    }

    fn versions(&self) -> Option<&api::Versions> {
        Some(&self.versions)
    }

    fn subscribe_alerts(&self) -> Option<tokio::sync::broadcast::Receiver<Alert>> {
        self.alerts.as_ref().map(|tx| tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_map_to_cgroup_dirs_without_escaping() {
        let m = Path::new("/sys/fs/cgroup");
        assert_eq!(
            cgroup_dir(m, "/system.slice/nginx.service"),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/nginx.service"))
        );
        assert_eq!(cgroup_dir(m, "/"), Some(PathBuf::from("/sys/fs/cgroup/")));
        assert_eq!(cgroup_dir(m, "/../../etc"), None);
        assert_eq!(
            cgroup_dir(m, "/a/./b"),
            Some(PathBuf::from("/sys/fs/cgroup/a/b"))
        );
        assert_eq!(cgroup_dir(m, "relative"), None);
    }
}
