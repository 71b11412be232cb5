//! The node's pods and the cluster's namespaces, as the watches report them: what the event loop
//! looks containers up in. Only what attribution, modes and policies need is kept
//! ([`PodInfo`]), so a node's pods cost little memory.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
};

use profiles::KubeMeta;

use super::identity::{MODE_ANNOTATION, PodInfo};

/// What the agent keeps of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Labels (for network policy namespace selectors).
    pub labels: BTreeMap<String, String>,
    /// The namespace's `baseliner.io/mode` annotation, as written.
    pub mode: Option<String>,
}

impl NamespaceInfo {
    /// From a namespace's metadata.
    pub fn from_meta(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        NamespaceInfo {
            labels: meta.labels.clone().unwrap_or_default(),
            mode: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(MODE_ANNOTATION))
                .cloned(),
        }
    }
}

/// The answer to "which container is this?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Known: the metadata events of this container carry.
    Found(Arc<KubeMeta>),
    /// The pod is not known (yet): its watch event may still be on its way.
    PodUnknown,
    /// The pod is known but has not reported this container yet (the kubelet reports a
    /// container's id shortly after it starts).
    ContainerPending,
}

/// The node's pods and the namespaces, indexed for the event loop.
#[derive(Debug, Default)]
pub struct PodCache {
    pods: HashMap<String, Arc<PodInfo>>,
    /// Container id → pod UID.
    containers: HashMap<String, String>,
    namespaces: HashMap<String, NamespaceInfo>,
    /// Bumped on every change, so readers can tell when to look again.
    generation: u64,
}

impl PodCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes so far.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Adds or replaces a pod.
    pub fn apply_pod(&mut self, pod: PodInfo) {
        self.unindex(&pod.uid);
        for c in &pod.containers {
            if let Some(id) = &c.id {
                self.containers.insert(id.clone(), pod.uid.clone());
            }
        }
        self.pods.insert(pod.uid.clone(), Arc::new(pod));
        self.generation += 1;
    }

    /// Removes a pod.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        self.unindex(uid);
        self.generation += 1;
        self.pods.remove(uid)
    }

    /// Replaces every pod (after a re-list).
    pub fn replace_pods(&mut self, pods: Vec<PodInfo>) {
        self.pods.clear();
        self.containers.clear();
        for p in pods {
            self.apply_pod(p);
        }
        self.generation += 1;
    }

    fn unindex(&mut self, uid: &str) {
        if let Some(old) = self.pods.get(uid) {
            for id in old.containers.iter().filter_map(|c| c.id.as_ref()) {
                self.containers.remove(id);
            }
        }
    }

    /// Adds or replaces a namespace.
    pub fn apply_namespace(&mut self, name: &str, ns: NamespaceInfo) {
        self.namespaces.insert(name.to_string(), ns);
        self.generation += 1;
    }

    /// Removes a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
        self.generation += 1;
    }

    /// Replaces every namespace (after a re-list).
    pub fn replace_namespaces(&mut self, all: Vec<(String, NamespaceInfo)>) {
        self.namespaces = all.into_iter().collect();
        self.generation += 1;
    }

    /// A namespace.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceInfo> {
        self.namespaces.get(name)
    }

    /// A pod by UID.
    pub fn pod(&self, uid: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(uid)
    }

    /// A pod by namespace and name.
    pub fn pod_named(&self, namespace: &str, name: &str) -> Option<&Arc<PodInfo>> {
        self.pods
            .values()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// Every pod.
    pub fn pods(&self) -> impl Iterator<Item = &Arc<PodInfo>> {
        self.pods.values()
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// No pods.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The newest pod (by creation time, then name) of each workload with a pod here: the one
    /// whose annotations and labels speak for the workload's replicas.
    pub fn newest_pods(&self) -> HashMap<String, &Arc<PodInfo>> {
        let mut newest: HashMap<String, &Arc<PodInfo>> = HashMap::new();
        for pod in self.pods.values() {
            for c in &pod.containers {
                let id = super::identity::workload_id(&c.meta);
                match newest.get(&id) {
                    Some(n) if (n.created, &n.name) >= (pod.created, &pod.name) => {}
                    _ => {
                        newest.insert(id, pod);
                    }
                }
            }
        }
        newest
    }

    /// The pod with IP `ip`, if it runs on this node.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Arc<PodInfo>> {
        self.pods.values().find(|p| p.ips.contains(&ip))
    }

    /// The container `container_id` of pod `pod_uid` (either may be unknown from the cgroup
    /// path: a container id alone is looked up across pods).
    pub fn lookup(&self, pod_uid: Option<&str>, container_id: Option<&str>) -> Lookup {
        let uid = match (pod_uid, container_id) {
            (Some(uid), _) => uid,
            (None, Some(id)) => match self.containers.get(id) {
                Some(uid) => uid.as_str(),
                None => return Lookup::PodUnknown,
            },
            (None, None) => return Lookup::PodUnknown,
        };
        let Some(pod) = self.pods.get(uid) else {
            return Lookup::PodUnknown;
        };
        let Some(id) = container_id else {
            // The pod's own cgroup (no container below it): the sandbox.
            return Lookup::Found(pod.sandbox.clone());
        };
        if let Some(c) = pod.containers.iter().find(|c| c.id.as_deref() == Some(id)) {
            return Lookup::Found(c.meta.clone());
        }
        if pod.all_started() {
            // Every container is reported and this is none of them: the pod's sandbox.
            Lookup::Found(pod.sandbox.clone())
        } else {
            Lookup::ContainerPending
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kubernetes::identity::tests::pod_json;

    const WEB: &str = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566aabb";

    fn pod(uid: &str) -> PodInfo {
        let p = pod_json(
            "shop",
            &format!("web-{uid}"),
            uid,
            Some(("ReplicaSet", "web-abc")),
            json!({ "pod-template-hash": "abc" }),
        );
        PodInfo::from_pod(&p).unwrap()
    }

    #[test]
    fn containers_sandboxes_and_pending_containers() {
        let mut cache = PodCache::new();
        assert_eq!(cache.lookup(Some("u1"), Some(WEB)), Lookup::PodUnknown);
        let g = cache.generation();
        cache.apply_pod(pod("u1"));
        assert!(cache.generation() > g);
        let Lookup::Found(m) = cache.lookup(Some("u1"), Some(WEB)) else {
            panic!("not found")
        };
        assert_eq!((m.pod.as_str(), m.container.as_str()), ("web-u1", "web"));
        // By container id alone.
        assert_eq!(cache.lookup(None, Some(WEB)), Lookup::Found(m));
        // The sidecar has not reported its id: an unknown id may be it.
        assert_eq!(
            cache.lookup(Some("u1"), Some("feed")),
            Lookup::ContainerPending
        );
        // The pod cgroup itself is the sandbox.
        let Lookup::Found(s) = cache.lookup(Some("u1"), None) else {
            panic!()
        };
        assert_eq!(s.container, "POD");
        // Once every container has an id, an unknown one is the sandbox (pause).
        let mut p = pod("u1");
        p.containers[2].id = Some("beef".into());
        cache.apply_pod(p);
        let Lookup::Found(s) = cache.lookup(Some("u1"), Some("feed")) else {
            panic!()
        };
        assert_eq!(s.container, "POD");
        assert_eq!(
            cache.lookup(None, Some("beef")),
            cache.lookup(Some("u1"), Some("beef"))
        );
        // Removed: unknown again, also by container id.
        cache.remove_pod("u1");
        assert_eq!(cache.lookup(None, Some(WEB)), Lookup::PodUnknown);
        assert!(cache.is_empty());
    }

    #[test]
    fn relist_replaces_everything() {
        let mut cache = PodCache::new();
        cache.apply_pod(pod("u1"));
        cache.apply_pod(pod("u2"));
        assert_eq!(cache.len(), 2);
        cache.replace_pods(vec![pod("u3")]);
        assert_eq!(cache.len(), 1);
        assert!(cache.pod("u1").is_none());
        assert!(cache.pod_named("shop", "web-u3").is_some());
        assert!(cache.pod_by_ip("10.1.2.3".parse().unwrap()).is_some());
        assert!(cache.pod_by_ip("10.9.9.9".parse().unwrap()).is_none());
        cache.replace_namespaces(vec![(
            "shop".into(),
            NamespaceInfo {
                mode: Some("enforce".into()),
                ..Default::default()
            },
        )]);
        assert_eq!(
            cache.namespace("shop").unwrap().mode.as_deref(),
            Some("enforce")
        );
        cache.remove_namespace("shop");
        assert!(cache.namespace("shop").is_none());
    }
}
