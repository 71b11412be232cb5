//! The Kubernetes responses behind [`KubeHooks`]: quarantine a pod (label it, then isolate it
//! with a deny-all NetworkPolicy that selects it) and delete a pod.
//!
//! The hooks run in the agent's event loop and never wait on the API: [`KubeResponder`] checks
//! the target, queues the action for a task on the tokio runtime and reports it
//! `requested: …` (the first audit record, written by the [`Responder`]); the task performs
//! it and appends a second audit record with the final outcome, `done: …` or `failed: …`.
//!
//! What this needs of the API (`deploy/rbac.yaml`): pods `patch` and `delete`;
//! networkpolicies `create` and `patch` (server-side apply is a PATCH that may create).
//!
//! [`Responder`]: crate::respond::Responder

use std::{collections::BTreeMap, future::Future, time::Duration};

use api::AuditRecord;
use k8s_openapi::{
    api::{
        core::v1::Pod,
        networking::v1::{NetworkPolicy, NetworkPolicySpec},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use scorer::alert::{ActionTaken, Alert};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::{
    runtime::Handle,
    sync::mpsc::{self, error::TrySendError},
};

use crate::{
    control::SharedRecorder,
    kubernetes::netpol::names,
    recorder::now_ns,
    respond::{Action, KubeHooks, audit, pod_target},
};

/// The label that marks a quarantined pod (`"true"`).
pub const QUARANTINE_LABEL: &str = "baseliner.io/quarantine";
/// The label that names the quarantined pod ([`pod_label_value`]), so that each pod's
/// policy selects that pod only.
pub const QUARANTINE_POD_LABEL: &str = "baseliner.io/quarantine-pod";
/// The field manager of the agent's writes.
pub const FIELD_MANAGER: &str = "baseliner";
/// The label every object the agent creates carries (with the value `baseliner`).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The quarantine policy's name is this prefix and the pod's name ([`policy_name`]).
pub const POLICY_PREFIX: &str = "baseliner-quarantine-";
/// Actions waiting for the task at most; more are skipped.
pub const QUEUE_CAPACITY: usize = 64;
/// How long one API call may take before the action fails.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest label value and quarantine policy name.
const MAX_NAME: usize = 63;
/// Hex digits of the hash that shortens a name.
const HASH_HEX: usize = 8;

/// Why a Kubernetes response was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The alert's event has no pod metadata: a host workload, or a pod not known (yet).
    #[error("{0} is not a known Kubernetes pod")]
    NotAPod(String),
    /// The pod's namespace or name is not one Kubernetes accepts.
    #[error("invalid pod {namespace}/{name}: {why}")]
    InvalidPod {
        /// The namespace, as the event has it.
        namespace: String,
        /// The pod's name, as the event has it.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The pod is the agent's own.
    #[error("pod {0} is the agent's own")]
    OwnPod(String),
    /// Too many actions are waiting for the task.
    #[error("the Kubernetes response queue is full ({0} actions waiting)")]
    QueueFull(usize),
    /// The task is gone (the runtime is shutting down).
    #[error("the Kubernetes response task has stopped")]
    Stopped,
    /// An API call failed.
    #[error("{step}: {}", describe(.source))]
    Api {
        /// What the call was for (`labelling the pod`).
        step: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An API call did not finish in time ([`API_TIMEOUT`]).
    #[error("{step}: no answer within {}s", .after.as_secs())]
    Timeout {
        /// What the call was for.
        step: &'static str,
        /// How long it was given.
        after: Duration,
    },
}

/// Result of this module's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the action was refused before anything was sent (`skipped`), false when it
    /// was tried and failed.
    pub fn is_skip(&self) -> bool {
        matches!(
            self,
            Error::NotAPod(_) | Error::InvalidPod { .. } | Error::OwnPod(_) | Error::QueueFull(_)
        )
    }

    /// The outcome in the audit log's words: `skipped: <why>` or `failed: <why>`.
    pub fn outcome(&self) -> String {
        let verdict = if self.is_skip() { "skipped" } else { "failed" };
        format!("{verdict}: {self}")
    }
}

/// A client error in few words: the API's status (`pods "web-1" is forbidden: … (Forbidden,
/// 403)`) or the client's own message.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let message = if s.message.is_empty() {
                "the API refused"
            } else {
                s.message.as_str()
            };
            match (s.reason.as_str(), s.code) {
                ("", 0) => message.to_string(),
                ("", code) => format!("{message} ({code})"),
                (reason, 0) => format!("{message} ({reason})"),
                (reason, code) => format!("{message} ({reason}, {code})"),
            }
        }
        e => e.to_string(),
    }
}

/// Runs an API call under [`API_TIMEOUT`].
async fn call<T>(step: &'static str, fut: impl Future<Output = kube::Result<T>>) -> Result<T> {
    match tokio::time::timeout(API_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|source| Error::Api { step, source }),
        Err(_) => Err(Error::Timeout {
            step,
            after: API_TIMEOUT,
        }),
    }
}

/// A pod to act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl PodRef {
    /// The pod of `alert`'s event, checked: a host workload, or an event without pod
    /// metadata, is [`Error::NotAPod`].
    pub fn of(alert: &Alert) -> Result<PodRef> {
        let k = alert
            .event
            .workload
            .k8s
            .as_ref()
            .ok_or_else(|| Error::NotAPod(alert.workload.clone()))?;
        let invalid = |why: String| Error::InvalidPod {
            namespace: k.namespace.clone(),
            name: k.pod.clone(),
            why,
        };
        names::check_namespace(&k.namespace).map_err(|e| invalid(e.to_string()))?;
        // A pod's name is a DNS-1123 subdomain, as a policy's is.
        names::check_object_name(&k.pod).map_err(|_| invalid("not a DNS-1123 subdomain".into()))?;
        Ok(PodRef {
            namespace: k.namespace.clone(),
            name: k.pod.clone(),
        })
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The first hex digits of SHA-256 of `s`.
fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest[..HASH_HEX / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `prefix` followed by `name`, at most 63 characters: when too long, the start of `name` and
/// a hash of all of it. `name` is a DNS-1123 subdomain (a pod's name), so the result is both
/// a valid object name and, without a prefix, a valid label value.
fn bounded(prefix: &str, name: &str) -> String {
    if prefix.len() + name.len() <= MAX_NAME {
        return format!("{prefix}{name}");
    }
    let keep = MAX_NAME - prefix.len() - 1 - HASH_HEX;
    // Subdomain characters are ASCII, so any byte index is a character boundary.
    let head = name[..keep].trim_end_matches(['-', '.']);
    let hash = short_hash(name);
    if head.is_empty() {
        format!("{prefix}{hash}")
    } else {
        format!("{prefix}{head}-{hash}")
    }
}

/// The value of [`QUARANTINE_POD_LABEL`] for a pod: its name, shortened with a hash when it is
/// longer than a label value may be.
pub fn pod_label_value(pod: &str) -> String {
    bounded("", pod)
}

/// The name of a pod's quarantine policy: `baseliner-quarantine-<pod>`, at most 63
/// characters (shortened with a hash of the pod's name when needed).
pub fn policy_name(pod: &str) -> String {
    bounded(POLICY_PREFIX, pod)
}

/// The labels quarantine puts on a pod, which its policy selects.
pub fn quarantine_labels(pod: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (QUARANTINE_LABEL.to_string(), "true".to_string()),
        (QUARANTINE_POD_LABEL.to_string(), pod_label_value(pod)),
    ])
}

/// The deny-all policy of a quarantined pod: it selects the pod by [`quarantine_labels`] and
/// allows no ingress and no egress.
pub fn quarantine_policy(pod: &PodRef) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(policy_name(&pod.name)),
            namespace: Some(pod.namespace.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_string(), FIELD_MANAGER.to_string()),
                (QUARANTINE_POD_LABEL.to_string(), pod_label_value(&pod.name)),
            ])),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(quarantine_labels(&pod.name)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: None,
        }),
    }
}

/// Quarantines `pod`: merge-patches its labels with [`quarantine_labels`], then applies
/// [`quarantine_policy`] (server-side, forced: the agent owns it). Idempotent. Returns what was
/// done, in words.
pub async fn quarantine(client: &Client, pod: &PodRef) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let labels = json!({ "metadata": { "labels": quarantine_labels(&pod.name) } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    call(
        "labelling the pod",
        pods.patch(&pod.name, &params, &Patch::Merge(&labels)),
    )
    .await?;
    let policy = quarantine_policy(pod);
    let name = policy_name(&pod.name);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &pod.namespace);
    call(
        "applying the deny-all NetworkPolicy",
        policies.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&policy),
        ),
    )
    .await?;
    Ok(format!("labelled and isolated by NetworkPolicy {name}"))
}

/// Deletes `pod` (its default grace period); a pod already gone is done too.
pub async fn delete_pod(client: &Client, pod: &PodRef) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    match call(
        "deleting the pod",
        pods.delete(&pod.name, &DeleteParams::default()),
    )
    .await
    {
        Ok(_) => Ok("deleted".into()),
        Err(Error::Api {
            source: kube::Error::Api(s),
            ..
        }) if s.is_not_found() => Ok("already gone".into()),
        Err(e) => Err(e),
    }
}

/// A Kubernetes action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Quarantine,
    Delete,
}

/// An action queued for the task, with the audit record to complete.
struct Job {
    kind: Kind,
    pod: PodRef,
    record: AuditRecord,
}

/// [`KubeHooks`] on a Kubernetes cluster: hands each action to a task on a tokio runtime and
/// reports it requested; the task audits its final outcome.
pub struct KubeResponder {
    jobs: mpsc::Sender<Job>,
    capacity: usize,
    own_pod: Option<PodRef>,
}

impl KubeResponder {
    /// A responder that acts through `client` from a task spawned on `runtime`, and audits
    /// outcomes in the store of `recorder`; at most [`QUEUE_CAPACITY`] actions wait.
    pub fn new(client: Client, runtime: &Handle, recorder: SharedRecorder) -> KubeResponder {
        KubeResponder::with_capacity(client, runtime, recorder, QUEUE_CAPACITY)
    }

    /// As [`KubeResponder::new`], with at most `capacity` (at least 1) actions waiting.
    pub fn with_capacity(
        client: Client,
        runtime: &Handle,
        recorder: SharedRecorder,
        capacity: usize,
    ) -> KubeResponder {
        let capacity = capacity.max(1);
        let (jobs, rx) = mpsc::channel(capacity);
        runtime.spawn(work(rx, client, recorder));
        KubeResponder {
            jobs,
            capacity,
            own_pod: None,
        }
    }

    /// Never acts on the pod `namespace/name` (the agent's own).
    pub fn protecting(mut self, namespace: &str, name: &str) -> KubeResponder {
        self.own_pod = Some(PodRef {
            namespace: namespace.into(),
            name: name.into(),
        });
        self
    }

    /// Checks the target and queues the action; never waits.
    fn request(&self, kind: Kind, alert: &Alert) -> Result<String> {
        let pod = PodRef::of(alert)?;
        if self.own_pod.as_ref() == Some(&pod) {
            return Err(Error::OwnPod(pod.to_string()));
        }
        let (action, what) = match kind {
            Kind::Quarantine => (Action::Quarantine, "quarantine"),
            Kind::Delete => (Action::DeletePod, "deletion"),
        };
        let requested = format!("requested: {what} of pod {pod}");
        let record = AuditRecord {
            actor: "agent".into(),
            workload: alert.workload.clone(),
            action: ActionTaken {
                action: action.as_str().into(),
                target: pod_target(alert),
                outcome: String::new(),
                at_ns: now_ns(),
            },
            alert_key: alert.key.clone(),
            alert_summary: alert.summary.clone(),
        };
        match self.jobs.try_send(Job { kind, pod, record }) {
            Ok(()) => Ok(requested),
            Err(TrySendError::Full(_)) => Err(Error::QueueFull(self.capacity)),
            Err(TrySendError::Closed(_)) => Err(Error::Stopped),
        }
    }

    fn hook(&self, kind: Kind, alert: &Alert) -> Result<String, String> {
        self.request(kind, alert).map_err(|e| {
            // The responder reports any other error as `failed: <it>`.
            if e.is_skip() {
                e.outcome()
            } else {
                e.to_string()
            }
        })
    }
}

impl KubeHooks for KubeResponder {
    fn quarantine(&self, alert: &Alert) -> Result<String, String> {
        self.hook(Kind::Quarantine, alert)
    }

    fn delete_pod(&self, alert: &Alert) -> Result<String, String> {
        self.hook(Kind::Delete, alert)
    }
}

/// The task: performs the queued actions one after another and audits each outcome.
async fn work(mut jobs: mpsc::Receiver<Job>, client: Client, recorder: SharedRecorder) {
    while let Some(Job {
        kind,
        pod,
        mut record,
    }) = jobs.recv().await
    {
        let result = match kind {
            Kind::Quarantine => quarantine(&client, &pod).await,
            Kind::Delete => delete_pod(&client, &pod).await,
        };
        record.action.outcome = match result {
            Ok(done) => format!("done: {done}"),
            Err(e) => e.outcome(),
        };
        // After the `requested` record, whose time is at most the request's.
        record.action.at_ns = now_ns().max(record.action.at_ns + 1);
        tracing::warn!(workload = %record.workload, action = %record.action.action,
            target = %record.action.target, outcome = %record.action.outcome,
            alert = %record.alert_key, "response");
        // The recorder may be held by the event loop for a while: wait for it off the runtime.
        let recorder = recorder.clone();
        let written = tokio::task::spawn_blocking(move || {
            let r = recorder.lock().unwrap_or_else(|e| e.into_inner());
            audit::append(r.store(), &record)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "writing the audit log"),
            Err(e) => tracing::error!(error = %e, "writing the audit log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        pin::pin,
        sync::{Arc, Mutex},
    };

    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use profiles::{Event, KubeMeta, mode::Mode, redact::Redactor, store::Store};
    use scorer::alert::Reason;
    use serde_json::Value;
    use tower_test::mock;

    use super::*;
    use crate::recorder::Recorder;

    /// One request the mock API received.
    #[derive(Debug)]
    struct Seen {
        method: String,
        uri: String,
        content_type: Option<String>,
        body: Value,
    }

    impl Seen {
        fn param(&self, name: &str) -> Option<String> {
            let query = self.uri.split_once('?')?.1;
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }

        fn path(&self) -> &str {
            self.uri.split('?').next().unwrap_or_default()
        }
    }

    /// A client whose API answers each request with the next of `answers` (status, body) and
    /// records what it received.
    fn mock_api(answers: Vec<(u16, Value)>) -> (Client, tokio::task::JoinHandle<Vec<Seen>>) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut handle = pin!(handle);
            let mut seen = Vec::new();
            for (status, answer) in answers {
                let (request, send) = handle.next_request().await.expect("a request");
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                seen.push(Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .map(|v| v.to_str().unwrap().to_string()),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                });
                let response = Response::builder()
                    .status(StatusCode::from_u16(status).unwrap())
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
            seen
        });
        (Client::new(service, "default"), server)
    }

    fn pod_json(name: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
        })
    }

    fn status(code: u16, reason: &str, message: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Status", "status": "Failure",
            "code": code, "reason": reason, "message": message,
        })
    }

    fn shop(name: &str) -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: name.into(),
        }
    }

    fn alert(k8s: Option<KubeMeta>) -> Alert {
        let mut event: Event = serde_json::from_value(json!({
            "schema": 1, "ts_ns": 1,
            "workload": {"id": "k8s:shop/Deployment/web/main", "cgroup_id": 7,
                         "cgroup": "/kubepods/pod1/ctr"},
            "pid": 10, "tid": 10, "ppid": 1, "uid": 0, "gid": 0, "comm": "sh",
            "kind": "exec", "filename": "/bin/sh", "argv": ["sh"], "argv_truncated": false
        }))
        .unwrap();
        event.workload.k8s = k8s.map(Arc::new);
        let reason = Reason::new("crypto-miner", 0.95, "a miner".into(), None);
        Alert::new(&event, "exec /bin/sh", vec![reason])
    }

    fn meta(namespace: &str, pod: &str) -> KubeMeta {
        KubeMeta {
            namespace: namespace.into(),
            pod: pod.into(),
            container: "main".into(),
            owner_kind: "Deployment".into(),
            owner_name: "web".into(),
            ..Default::default()
        }
    }

    fn recorder(dir: &tempfile::TempDir) -> SharedRecorder {
        let store = Store::open(dir.path()).unwrap();
        Arc::new(Mutex::new(Recorder::new(
            store,
            Redactor::default(),
            Mode::Alert,
        )))
    }

    /// The audit records, once there are `n` (within five seconds).
    async fn audit_records(recorder: &SharedRecorder, n: usize) -> Vec<AuditRecord> {
        for _ in 0..500 {
            let all = audit::all(recorder.lock().unwrap().store()).unwrap();
            if all.len() >= n {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} audit records");
    }

    #[tokio::test]
    async fn quarantine_labels_the_pod_then_applies_a_deny_all_policy() {
        let policy = serde_json::to_value(quarantine_policy(&shop("web-1"))).unwrap();
        let (client, server) = mock_api(vec![(200, pod_json("web-1")), (200, policy)]);
        let done = quarantine(&client, &shop("web-1")).await.unwrap();
        assert_eq!(
            done,
            "labelled and isolated by NetworkPolicy baseliner-quarantine-web-1"
        );
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 2);

        assert_eq!(seen[0].method, "PATCH");
        assert_eq!(seen[0].path(), "/api/v1/namespaces/shop/pods/web-1");
        assert_eq!(
            seen[0].content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(seen[0].param("fieldManager").as_deref(), Some("baseliner"));
        assert_eq!(
            seen[0].body,
            json!({"metadata": {"labels": {
                "baseliner.io/quarantine": "true",
                "baseliner.io/quarantine-pod": "web-1",
            }}})
        );

        assert_eq!(seen[1].method, "PATCH");
        assert_eq!(
            seen[1].path(),
            "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/baseliner-quarantine-web-1"
        );
        assert_eq!(
            seen[1].content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(seen[1].param("fieldManager").as_deref(), Some("baseliner"));
        assert_eq!(seen[1].param("force").as_deref(), Some("true"));
        assert_eq!(
            seen[1].body,
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {
                    "name": "baseliner-quarantine-web-1",
                    "namespace": "shop",
                    "labels": {
                        "app.kubernetes.io/managed-by": "baseliner",
                        "baseliner.io/quarantine-pod": "web-1",
                    },
                },
                "spec": {
                    "podSelector": {"matchLabels": {
                        "baseliner.io/quarantine": "true",
                        "baseliner.io/quarantine-pod": "web-1",
                    }},
                    "policyTypes": ["Ingress", "Egress"],
                },
            })
        );
    }

    #[tokio::test]
    async fn delete_uses_the_default_grace_period_and_a_missing_pod_is_already_gone() {
        let (client, server) = mock_api(vec![
            (200, pod_json("web-1")),
            (404, status(404, "NotFound", "pods \"web-1\" not found")),
        ]);
        assert_eq!(
            delete_pod(&client, &shop("web-1")).await.unwrap(),
            "deleted"
        );
        assert_eq!(
            delete_pod(&client, &shop("web-1")).await.unwrap(),
            "already gone"
        );
        let seen = server.await.unwrap();
        for s in &seen {
            assert_eq!(s.method, "DELETE");
            assert_eq!(s.path(), "/api/v1/namespaces/shop/pods/web-1");
            assert_eq!(s.content_type.as_deref(), Some("application/json"));
            assert_eq!(s.body.get("gracePeriodSeconds"), None, "{:?}", s.body);
        }
    }

    #[tokio::test]
    async fn the_hook_returns_at_once_and_the_outcome_is_audited_later() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = recorder(&dir);
        let (client, server) = mock_api(vec![
            (200, pod_json("web-1")),
            (
                200,
                serde_json::to_value(quarantine_policy(&shop("web-1"))).unwrap(),
            ),
            (404, status(404, "NotFound", "pods \"web-2\" not found")),
        ]);
        let hooks = KubeResponder::new(client, &Handle::current(), recorder.clone());
        let a = alert(Some(meta("shop", "web-1")));
        assert_eq!(
            hooks.quarantine(&a).unwrap(),
            "requested: quarantine of pod shop/web-1"
        );
        let b = alert(Some(meta("shop", "web-2")));
        assert_eq!(
            hooks.delete_pod(&b).unwrap(),
            "requested: deletion of pod shop/web-2"
        );
        let records = audit_records(&recorder, 2).await;
        let got: Vec<(&str, &str, &str)> = records
            .iter()
            .map(|r| {
                (
                    r.action.action.as_str(),
                    r.action.target.as_str(),
                    r.action.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "quarantine",
                    "pod shop/web-1",
                    "done: labelled and isolated by NetworkPolicy baseliner-quarantine-web-1"
                ),
                ("delete-pod", "pod shop/web-2", "done: already gone"),
            ]
        );
        assert!(records.iter().all(|r| r.actor == "agent"
            && r.alert_key == a.key
            && r.alert_summary == "a miner"
            && r.workload == "k8s:shop/Deployment/web/main"));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_api_error_is_a_failed_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = recorder(&dir);
        let forbidden = status(
            403,
            "Forbidden",
            "pods \"web-1\" is forbidden: User \"system:serviceaccount:baseliner:baseliner\" \
             cannot patch resource \"pods\"",
        );
        let (client, server) = mock_api(vec![(403, forbidden)]);
        let hooks = KubeResponder::new(client, &Handle::current(), recorder.clone());
        hooks
            .quarantine(&alert(Some(meta("shop", "web-1"))))
            .unwrap();
        let records = audit_records(&recorder, 1).await;
        assert_eq!(
            records[0].action.outcome,
            "failed: labelling the pod: pods \"web-1\" is forbidden: User \
             \"system:serviceaccount:baseliner:baseliner\" cannot patch resource \"pods\" \
             (Forbidden, 403)"
        );
        // No policy is applied for a pod that could not be labelled.
        assert_eq!(server.await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn targets_are_checked_before_anything_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (client, _server) = mock_api(Vec::new());
        let hooks = KubeResponder::new(client, &Handle::current(), recorder(&dir))
            .protecting("baseliner", "baseliner-x1");
        assert_eq!(
            hooks.quarantine(&alert(None)).unwrap_err(),
            "skipped: k8s:shop/Deployment/web/main is not a known Kubernetes pod"
        );
        assert_eq!(
            hooks
                .delete_pod(&alert(Some(meta("baseliner", "baseliner-x1"))))
                .unwrap_err(),
            "skipped: pod baseliner/baseliner-x1 is the agent's own"
        );
        let bad = hooks
            .delete_pod(&alert(Some(meta("Shop", "web-1"))))
            .unwrap_err();
        assert!(
            bad.starts_with("skipped: invalid pod Shop/web-1: "),
            "{bad}"
        );
        let bad = hooks
            .delete_pod(&alert(Some(meta("shop", ""))))
            .unwrap_err();
        assert!(bad.starts_with("skipped: invalid pod shop/: "), "{bad}");
    }

    #[tokio::test]
    async fn a_full_queue_says_so() {
        let dir = tempfile::tempdir().unwrap();
        // The API never answers: the task holds the first action, the queue the second.
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let hooks = KubeResponder::with_capacity(client, &Handle::current(), recorder(&dir), 1);
        let a = alert(Some(meta("shop", "web-1")));
        hooks.delete_pod(&a).unwrap();
        let mut handle = pin!(handle);
        let _pending = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
            .await
            .expect("the task sends the first action's request");
        hooks.delete_pod(&a).unwrap();
        assert_eq!(
            hooks.delete_pod(&a).unwrap_err(),
            "skipped: the Kubernetes response queue is full (1 actions waiting)"
        );
    }

    #[test]
    fn long_pod_names_get_bounded_hashed_names() {
        assert_eq!(policy_name("web-1"), "baseliner-quarantine-web-1");
        assert_eq!(pod_label_value("web-1"), "web-1");
        let long = format!("{}-7d9f8b6c5-x2x4z", "a".repeat(60));
        let name = policy_name(&long);
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.starts_with("baseliner-quarantine-aaaa"), "{name}");
        assert!(names::check_object_name(&name).is_ok());
        assert_ne!(name, policy_name(&format!("{long}x")));
        let value = pod_label_value(&long);
        assert_eq!(value.len(), 63);
        assert!(
            names::check_labels(&BTreeMap::from([(QUARANTINE_POD_LABEL.to_string(), value)]))
                .is_ok()
        );
        // A cut that ends on '-' or '.' is trimmed: names stay valid.
        let dotted = format!("{}.{}", "b".repeat(32), "c".repeat(40));
        assert!(names::check_object_name(&policy_name(&dotted)).is_ok());
        assert_eq!(
            policy_name(&dotted),
            format!(
                "baseliner-quarantine-{}-{}",
                "b".repeat(32),
                short_hash(&dotted)
            )
        );
    }
}
