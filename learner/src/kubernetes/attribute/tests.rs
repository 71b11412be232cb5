use serde_json::json;

use super::*;
use crate::kubernetes::{identity::PodInfo, identity::tests::pod_json};

const WEB: &str = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566aabb";

/// An exec event from container `container_id` of pod `pod_uid`, at `ts_ns`.
fn event(pod_uid: Option<&str>, container_id: Option<&str>, ts_ns: u64) -> Event {
    serde_json::from_value(json!({
        "schema": 1, "ts_ns": ts_ns,
        "workload": {
            "id": "/kubepods/pod/ctr", "cgroup_id": 7, "cgroup": "/kubepods/pod/ctr",
            "runtime": "containerd", "container_id": container_id, "pod_uid": pod_uid
        },
        "pid": 10, "tid": 10, "ppid": 1, "uid": 0, "gid": 0, "comm": "sh",
        "kind": "exec", "filename": "/bin/sh", "argv": ["sh"], "argv_truncated": false
    }))
    .unwrap()
}

fn web_pod(uid: &str) -> PodInfo {
    let p = pod_json(
        "shop",
        "web-abc-1",
        uid,
        Some(("ReplicaSet", "web-abc")),
        json!({ "pod-template-hash": "abc", "app": "web" }),
    );
    PodInfo::from_pod(&p).unwrap()
}

fn ids(events: &[Event]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| (e.ts_ns, e.workload.id.clone()))
        .collect()
}

#[test]
fn known_pods_are_attributed_at_once() {
    let cache = Arc::new(RwLock::new(PodCache::new()));
    cache.write().unwrap().apply_pod(web_pod("u1"));
    let mut a = Attribution::new(cache, DEFAULT_MAX_HOLD);
    let mut ready = Vec::new();
    a.admit(event(Some("u1"), Some(WEB), 1), Instant::now(), &mut ready);
    assert_eq!(
        ids(&ready),
        [(1, "k8s:shop/Deployment/web/web".to_string())]
    );
    let meta = ready[0].workload.k8s.as_ref().unwrap();
    assert_eq!(
        (
            meta.namespace.as_str(),
            meta.pod.as_str(),
            meta.image.as_str()
        ),
        ("shop", "web-abc-1", "nginx:1.27")
    );
    assert_eq!(meta.labels["app"], "web");
    assert_eq!(a.stats().attributed, 1);
    // A host event passes untouched.
    ready.clear();
    a.admit(event(None, None, 2), Instant::now(), &mut ready);
    assert_eq!(ids(&ready), [(2, "/kubepods/pod/ctr".to_string())]);
    assert!(ready[0].workload.k8s.is_none());
}

#[test]
fn events_wait_for_their_pod_in_order() {
    let cache = Arc::new(RwLock::new(PodCache::new()));
    let mut a = Attribution::new(cache.clone(), DEFAULT_MAX_HOLD);
    let t0 = Instant::now();
    let mut ready = Vec::new();
    a.admit(event(Some("u1"), Some(WEB), 1), t0, &mut ready);
    a.admit(event(Some("u1"), Some(WEB), 2), t0, &mut ready);
    // Another pod's and the host's events are not held up.
    a.admit(event(None, None, 3), t0, &mut ready);
    assert_eq!(ids(&ready), [(3, "/kubepods/pod/ctr".to_string())]);
    assert_eq!(a.stats().waiting, 2);
    ready.clear();
    // Nothing changed: still waiting.
    a.release(t0 + Duration::from_millis(100), &mut ready);
    assert!(ready.is_empty());
    // The pod arrives: both go, in order, with metadata.
    cache.write().unwrap().apply_pod(web_pod("u1"));
    a.release(t0 + Duration::from_millis(200), &mut ready);
    let web = "k8s:shop/Deployment/web/web".to_string();
    assert_eq!(ids(&ready), [(1, web.clone()), (2, web.clone())]);
    let s = a.stats();
    assert_eq!(
        (s.attributed, s.held, s.unattributed, s.waiting),
        (2, 2, 0, 0)
    );
}

#[test]
fn a_later_event_never_overtakes_a_held_one() {
    let cache = Arc::new(RwLock::new(PodCache::new()));
    let mut a = Attribution::new(cache.clone(), DEFAULT_MAX_HOLD);
    let t0 = Instant::now();
    let mut ready = Vec::new();
    a.admit(event(Some("u1"), Some(WEB), 1), t0, &mut ready);
    cache.write().unwrap().apply_pod(web_pod("u1"));
    // The next event releases the held one first.
    a.admit(event(Some("u1"), Some(WEB), 2), t0, &mut ready);
    let web = "k8s:shop/Deployment/web/web".to_string();
    assert_eq!(ids(&ready), [(1, web.clone()), (2, web)]);
}

#[test]
fn pending_containers_wait_and_unknown_pods_expire_counted() {
    let cache = Arc::new(RwLock::new(PodCache::new()));
    cache.write().unwrap().apply_pod(web_pod("u1"));
    let hold = Duration::from_secs(2);
    let mut a = Attribution::new(cache.clone(), hold);
    let t0 = Instant::now();
    let mut ready = Vec::new();
    // The sidecar's id is not reported yet: held.
    a.admit(event(Some("u1"), Some("feed"), 1), t0, &mut ready);
    // A pod the watch never reports.
    a.admit(event(Some("ghost"), Some(WEB), 2), t0, &mut ready);
    assert!(ready.is_empty());
    let mut p = web_pod("u1");
    p.containers[2].id = Some("feed".into());
    cache.write().unwrap().apply_pod(p);
    a.release(t0 + Duration::from_millis(10), &mut ready);
    assert_eq!(
        ids(&ready),
        [(1, "k8s:shop/Deployment/web/sidecar".to_string())]
    );
    ready.clear();
    a.release(t0 + hold, &mut ready);
    assert_eq!(ids(&ready), [(2, "/kubepods/pod/ctr".to_string())]);
    assert!(ready[0].workload.k8s.is_none());
    let s = a.stats();
    assert_eq!((s.attributed, s.unattributed, s.waiting), (1, 1, 0));
}

#[test]
fn container_ids_without_a_pod_are_looked_up_but_never_held() {
    let cache = Arc::new(RwLock::new(PodCache::new()));
    let mut a = Attribution::new(cache.clone(), DEFAULT_MAX_HOLD);
    let mut ready = Vec::new();
    a.admit(event(None, Some(WEB), 1), Instant::now(), &mut ready);
    assert_eq!(ready.len(), 1);
    assert!(ready[0].workload.k8s.is_none());
    cache.write().unwrap().apply_pod(web_pod("u1"));
    a.admit(event(None, Some(WEB), 2), Instant::now(), &mut ready);
    assert_eq!(ready[1].workload.id, "k8s:shop/Deployment/web/web");
    let mut rest = Vec::new();
    a.drain(&mut rest);
    assert!(rest.is_empty());
}
