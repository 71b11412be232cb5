//! From a pod to the workload identity of each of its containers: namespace, top owner (a
//! ReplicaSet's Deployment, a Job's CronJob, a StatefulSet, a DaemonSet, or the bare pod) and
//! container name, with the revision (pod-template hash, controller revision or image digest).
//!
//! Owners are found from the pod alone, so the agent needs no read access to ReplicaSets or
//! Jobs: a ReplicaSet named `<deployment>-<pod-template-hash>` belongs to that Deployment (the
//! Deployment controller names them so and labels the pods with the hash), and a Job named
//! `<cronjob>-<scheduled minute>` to that CronJob (the CronJob controller's naming).

use std::{net::IpAddr, sync::Arc};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use profiles::KubeMeta;

/// The annotation that sets a workload's mode, on the pod (from its template) or namespace.
pub const MODE_ANNOTATION: &str = "baseliner.io/mode";
/// Label the Deployment controller puts on its pods (the ReplicaSet's name suffix).
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Label the StatefulSet and DaemonSet controllers put on their pods.
const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";
/// The container name of events from the pod's sandbox (the runtime's pause process).
pub const SANDBOX: &str = "POD";

/// One container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Name in the pod spec.
    pub name: String,
    /// Runtime container id (64 hex digits, the `containerd://` prefix removed), once the
    /// kubelet has reported the container started.
    pub id: Option<String>,
    /// What events of this container carry.
    pub meta: Arc<KubeMeta>,
}

/// What the agent keeps of one pod: small, so a node's pods cost little.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// The pod's UID.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The pod's `baseliner.io/mode` annotation, as written.
    pub mode: Option<String>,
    /// Creation time (seconds since the Unix epoch; 0 when unknown).
    pub created: i64,
    /// The pod's IP addresses.
    pub ips: Vec<IpAddr>,
    /// Init, app and ephemeral containers.
    pub containers: Vec<Container>,
    /// The sandbox's metadata (container [`SANDBOX`]).
    pub sandbox: Arc<KubeMeta>,
}

impl PodInfo {
    /// What a pod from the API says; `None` without a UID, name or namespace.
    pub fn from_pod(pod: &Pod) -> Option<PodInfo> {
        let m = &pod.metadata;
        let uid = m.uid.clone()?;
        let name = m.name.clone()?;
        let namespace = m.namespace.clone()?;
        let labels = m.labels.clone().unwrap_or_default();
        let (owner_kind, owner_name) = owner(pod);
        let revision = labels
            .get(POD_TEMPLATE_HASH)
            .or_else(|| labels.get(CONTROLLER_REVISION_HASH))
            .cloned();
        let base = KubeMeta {
            namespace: namespace.clone(),
            pod: name.clone(),
            container: String::new(),
            image: String::new(),
            owner_kind,
            owner_name,
            revision: String::new(),
            labels,
        };
        let status = pod.status.as_ref();
        let statuses: Vec<&ContainerStatus> = status
            .into_iter()
            .flat_map(|s| {
                [
                    s.init_container_statuses.as_deref(),
                    s.container_statuses.as_deref(),
                    s.ephemeral_container_statuses.as_deref(),
                ]
            })
            .flatten()
            .flatten()
            .collect();
        let spec = pod.spec.as_ref();
        let specs = spec
            .into_iter()
            .flat_map(|s| {
                let init = s.init_containers.iter().flatten();
                let app = s.containers.iter();
                let eph = s.ephemeral_containers.iter().flatten();
                init.map(|c| (c.name.clone(), c.image.clone()))
                    .chain(app.map(|c| (c.name.clone(), c.image.clone())))
                    .chain(eph.map(|c| (c.name.clone(), c.image.clone())))
            })
            .collect::<Vec<_>>();
        let containers = specs
            .into_iter()
            .map(|(cname, image)| {
                let st = statuses.iter().find(|s| s.name == cname);
                let digest = st.map(|s| image_digest(&s.image_id)).unwrap_or_default();
                let meta = KubeMeta {
                    container: cname.clone(),
                    image: image.unwrap_or_default(),
                    revision: revision.clone().unwrap_or(digest),
                    ..base.clone()
                };
                Container {
                    name: cname,
                    id: st
                        .and_then(|s| s.container_id.as_deref())
                        .and_then(runtime_id),
                    meta: Arc::new(meta),
                }
            })
            .collect();
        let sandbox = KubeMeta {
            container: SANDBOX.into(),
            revision: revision.unwrap_or_default(),
            ..base
        };
        Some(PodInfo {
            uid,
            namespace,
            name,
            mode: m
                .annotations
                .as_ref()
                .and_then(|a| a.get(MODE_ANNOTATION))
                .cloned(),
            created: m.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second()),
            ips: status
                .and_then(|s| s.pod_ips.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|p| p.ip.parse().ok())
                .collect(),
            containers,
            sandbox: Arc::new(sandbox),
        })
    }

    /// The workload identity of the pod (its owner), for any of its containers.
    pub fn owner(&self) -> (&str, &str) {
        (&self.sandbox.owner_kind, &self.sandbox.owner_name)
    }

    /// Whether the kubelet has reported an id for every container that runs or ran.
    pub fn all_started(&self) -> bool {
        self.containers.iter().all(|c| c.id.is_some())
    }
}

/// The workload id of a container: `k8s:<namespace>/<owner kind>/<owner name>/<container>`.
/// Replicas of one owner share it, and so share one profile.
pub fn workload_id(meta: &KubeMeta) -> String {
    format!(
        "k8s:{}/{}/{}/{}",
        meta.namespace, meta.owner_kind, meta.owner_name, meta.container
    )
}

/// The parts of a workload id made by [`workload_id`]: namespace, owner kind, owner name and
/// container; `None` for host workloads.
pub fn parse_workload_id(id: &str) -> Option<[&str; 4]> {
    let mut parts = id.strip_prefix("k8s:")?.splitn(4, '/');
    Some([parts.next()?, parts.next()?, parts.next()?, parts.next()?])
}

/// The runtime's id of a container from a status `containerID` (`containerd://<id>`,
/// `cri-o://<id>`, `docker://<id>`).
pub fn runtime_id(container_id: &str) -> Option<String> {
    let id = container_id
        .split_once("://")
        .map_or(container_id, |(_, id)| id);
    (!id.is_empty()).then(|| id.to_ascii_lowercase())
}

/// A short image digest (`sha256-<first 16 hex digits>`) from a status `imageID`
/// (`docker.io/library/nginx@sha256:…` or `sha256:…`); empty when there is none.
pub fn image_digest(image_id: &str) -> String {
    match image_id.rsplit_once("sha256:") {
        Some((_, hex)) if hex.len() >= 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("sha256-{}", &hex[..16])
        }
        _ => String::new(),
    }
}

/// The pod's top owner: kind and name.
pub fn owner(pod: &Pod) -> (String, String) {
    let m = &pod.metadata;
    let refs = m.owner_references.as_deref().unwrap_or_default();
    let Some(r) = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
    else {
        return ("Pod".into(), m.name.clone().unwrap_or_default());
    };
    let labels = m.labels.as_ref();
    match r.kind.as_str() {
        "ReplicaSet" => {
            let hash = labels.and_then(|l| l.get(POD_TEMPLATE_HASH));
            match hash.and_then(|h| r.name.strip_suffix(h.as_str())?.strip_suffix('-')) {
                Some(deployment) if !deployment.is_empty() => {
                    ("Deployment".into(), deployment.into())
                }
                _ => (r.kind.clone(), r.name.clone()),
            }
        }
        "Job" => match cronjob_of(&r.name) {
            Some(cronjob) => ("CronJob".into(), cronjob.into()),
            None => (r.kind.clone(), r.name.clone()),
        },
        _ => (r.kind.clone(), r.name.clone()),
    }
}

/// The CronJob of a Job named `<cronjob>-<scheduled time in minutes since the epoch>`.
fn cronjob_of(job: &str) -> Option<&str> {
    let (name, minutes) = job.rsplit_once('-')?;
    // Minutes since the epoch have had 8 digits since 1973.
    (minutes.len() >= 8 && minutes.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
        .then_some(name)
}

#[cfg(test)]
pub(crate) mod tests;
