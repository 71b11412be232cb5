//! The watches: this node's pods (field selector `spec.nodeName`) and every namespace's
//! metadata, kept in the [`PodCache`]; after each change the annotations' modes are applied
//! and invalid values reported as Kubernetes Events.

use std::sync::{Arc, Mutex, RwLock};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt as _,
        events::{Event as KubeEvent, EventType, Recorder as EventRecorder, Reporter},
        watcher::{self, Event},
    },
};
use serde::Serialize;
use tokio::sync::Notify;

use super::{
    identity::PodInfo,
    modes::{Annotated, InvalidMode, ModeController},
    pods::{NamespaceInfo, PodCache},
};
use crate::control::SharedRecorder;

/// Workload → diverging replicas, as the profile sharing reports them.
pub type DivergentRef = super::share::Divergent;

/// The name the agent reports Kubernetes Events under.
pub const REPORTER: &str = "baseliner";

/// What the watches have done, for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchStats {
    /// Pods of this node known now.
    pub pods: u64,
    /// Namespaces known now.
    pub namespaces: u64,
    /// Whether the first full list of pods has arrived.
    pub pods_synced: bool,
    /// Whether the first full list of namespaces has arrived.
    pub namespaces_synced: bool,
    /// Watch errors (each retried with backoff).
    pub errors: u64,
    /// Modes changed by annotations.
    pub mode_changes: u64,
    /// Invalid annotation values reported.
    pub invalid_modes: u64,
}

/// State the watches share with the event loop and the API.
#[derive(Clone)]
pub struct Shared {
    /// The node's pods and the namespaces.
    pub cache: Arc<RwLock<PodCache>>,
    /// Workload → the annotation that decides its mode.
    pub mode_sources: crate::control::ModeSources,
    /// Counters.
    pub stats: Arc<Mutex<WatchStats>>,
    /// Rung after every change of the cache.
    pub changed: Arc<Notify>,
    /// Workload → replicas whose part of the shared profile diverges from their siblings'.
    pub divergent: DivergentRef,
}

impl Shared {
    /// Empty state.
    pub fn new() -> Shared {
        Shared {
            cache: Arc::new(RwLock::new(PodCache::new())),
            mode_sources: Arc::default(),
            stats: Arc::default(),
            changed: Arc::new(Notify::new()),
            divergent: Arc::default(),
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, WatchStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cache(&self) -> std::sync::RwLockWriteGuard<'_, PodCache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts the watches, the mode controller and the profile sharing on the current tokio
/// runtime; they run until the runtime stops.
pub fn spawn(
    client: Client,
    node: &str,
    shared: &Shared,
    recorder: SharedRecorder,
    publish_every: std::time::Duration,
) {
    tokio::spawn(watch_pods(client.clone(), node.to_string(), shared.clone()));
    tokio::spawn(watch_namespaces(client.clone(), shared.clone()));
    tokio::spawn(apply_modes(
        client.clone(),
        node.to_string(),
        shared.clone(),
        recorder.clone(),
    ));
    tokio::spawn(super::share::watch_profiles(
        client.clone(),
        node.to_string(),
        recorder.clone(),
    ));
    tokio::spawn(super::share::publish_loop(
        client,
        node.to_string(),
        publish_every,
        recorder,
        shared.mode_sources.clone(),
        shared.divergent.clone(),
    ));
}

/// Keeps the cache's pods in line with the API server's pods of `node`.
pub async fn watch_pods(client: Client, node: String, shared: Shared) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut relist: Vec<PodInfo> = Vec::new();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(event)) => {
                match event {
                    Event::Apply(p) => match PodInfo::from_pod(&p) {
                        Some(info) => shared.cache().apply_pod(info),
                        None => continue,
                    },
                    Event::Delete(p) => {
                        let Some(uid) = p.metadata.uid.as_deref() else {
                            continue;
                        };
                        shared.cache().remove_pod(uid);
                    }
                    Event::Init => {
                        relist.clear();
                        continue;
                    }
                    Event::InitApply(p) => {
                        relist.extend(PodInfo::from_pod(&p));
                        continue;
                    }
                    Event::InitDone => {
                        shared.cache().replace_pods(std::mem::take(&mut relist));
                        shared.stats().pods_synced = true;
                    }
                }
                let n = shared.cache.read().map_or(0, |c| c.len() as u64);
                shared.stats().pods = n;
                shared.changed.notify_one();
            }
            Ok(None) => return,
            Err(e) => {
                shared.stats().errors += 1;
                tracing::warn!(error = %e, "watching this node's pods (retrying)");
            }
        }
    }
}

/// Keeps the cache's namespaces (labels and mode annotation) in line with the API server's.
pub async fn watch_namespaces(client: Client, shared: Shared) {
    // Metadata only: labels and annotations are all the agent needs of a namespace.
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let mut relist = Vec::new();
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(event)) => {
                let name =
                    |m: &PartialObjectMeta<Namespace>| m.metadata.name.clone().unwrap_or_default();
                match event {
                    Event::Apply(m) => shared
                        .cache()
                        .apply_namespace(&name(&m), NamespaceInfo::from_meta(&m.metadata)),
                    Event::Delete(m) => shared.cache().remove_namespace(&name(&m)),
                    Event::Init => {
                        relist.clear();
                        continue;
                    }
                    Event::InitApply(m) => {
                        relist.push((name(&m), NamespaceInfo::from_meta(&m.metadata)));
                        continue;
                    }
                    Event::InitDone => {
                        let n = relist.len() as u64;
                        shared
                            .cache()
                            .replace_namespaces(std::mem::take(&mut relist));
                        let mut s = shared.stats();
                        s.namespaces_synced = true;
                        s.namespaces = n;
                    }
                }
                shared.changed.notify_one();
            }
            Ok(None) => return,
            Err(e) => {
                shared.stats().errors += 1;
                tracing::warn!(error = %e, "watching namespaces (retrying)");
            }
        }
    }
}

/// After every change of the cache, applies the annotations' modes and reports invalid values
/// as Warning Events on their objects.
pub async fn apply_modes(client: Client, node: String, shared: Shared, recorder: SharedRecorder) {
    let events = EventRecorder::new(
        client,
        Reporter {
            controller: REPORTER.into(),
            instance: Some(node),
        },
    );
    let mut modes = ModeController::new();
    loop {
        shared.changed.notified().await;
        // Both lists first: a pod's mode may come from its namespace.
        let synced = {
            let s = shared.stats();
            s.pods_synced && s.namespaces_synced
        };
        if !synced {
            continue;
        }
        let outcome = {
            let cache = shared.cache.read().unwrap_or_else(|e| e.into_inner());
            let mut r = recorder.lock().unwrap_or_else(|e| e.into_inner());
            let outcome = modes.reconcile(&cache, &mut r);
            // Before the recorder is released: whoever sees a mode sees where it comes from.
            *shared
                .mode_sources
                .write()
                .unwrap_or_else(|e| e.into_inner()) = modes.sources();
            outcome
        };
        match outcome {
            Ok((changes, invalid)) => {
                {
                    let mut s = shared.stats();
                    s.mode_changes += changes.len() as u64;
                    s.invalid_modes += invalid.len() as u64;
                }
                for i in invalid {
                    report_invalid(&events, &i).await;
                }
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "applying modes from annotations"),
        }
    }
}

/// Publishes a Warning Event about an invalid mode annotation on its object.
async fn report_invalid(events: &EventRecorder, invalid: &InvalidMode) {
    let reference = match &invalid.object {
        Annotated::Pod {
            namespace,
            name,
            uid,
        } => ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(namespace.clone()),
            name: Some(name.clone()),
            uid: Some(uid.clone()),
            ..Default::default()
        },
        Annotated::Namespace(name) => ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Namespace".into()),
            name: Some(name.clone()),
            ..Default::default()
        },
    };
    let event = KubeEvent {
        type_: EventType::Warning,
        reason: "InvalidMode".into(),
        note: Some(invalid.message()),
        action: "SetMode".into(),
        secondary: None,
    };
    if let Err(e) = events.publish(&event, &reference).await {
        tracing::warn!(error = %e, "reporting an invalid mode annotation as a Kubernetes Event");
    }
}
