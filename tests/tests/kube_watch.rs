//! The pod and namespace watches and the annotation modes, with the real `kube::Client`
//! talking HTTP to the fake API server on loopback (no root needed).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use baseliner_tests::fake_kube::FakeKube;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use learner::{
    kubernetes::{pods::Lookup, watch},
    recorder::Recorder,
};
use profiles::{mode::Mode, redact::Redactor, store::Store};
use serde_json::json;

fn pod(name: &str, uid: &str, node: &str, mode: Option<&str>) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop", "uid": uid,
            "labels": { "app": "web", "pod-template-hash": "abc" },
            "annotations": mode.map(|m| json!({ "baseliner.io/mode": m })),
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-abc", "uid": "rs-1", "controller": true }]
        },
        "spec": { "nodeName": node, "containers": [{ "name": "app", "image": "web:1" }] },
        "status": { "containerStatuses": [{
            "name": "app", "image": "web:1", "imageID": "", "ready": true, "restartCount": 0,
            "containerID": format!("containerd://{uid}0000")
        }]}
    }))
    .unwrap()
}

/// Polls `check` every 10 ms for at most 5 s; how long it took.
fn wait(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(5), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

#[test]
fn watches_fill_the_cache_and_annotations_set_modes() {
    let fake = FakeKube::start();
    fake.upsert::<Namespace>(
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": "shop", "labels": { "team": "a" } }
        }))
        .unwrap(),
    );
    fake.upsert(&pod("web-2", "u2", "node-b", Some("enforce")));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let recorder = Arc::new(Mutex::new(Recorder::new(
        store,
        Redactor::default(),
        Mode::Learn,
    )));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shared = watch::Shared::new();
    let client = fake.client();
    {
        let _guard = rt.enter();
        watch::spawn(
            client,
            "node-a",
            &shared,
            recorder.clone(),
            Duration::from_secs(1),
        );
    }
    let workload = "k8s:shop/Deployment/web/app";
    wait("both lists", || {
        let s = shared.stats.lock().unwrap();
        s.pods_synced && s.namespaces_synced
    });
    // Added after both lists: through the watch.
    fake.upsert(&pod("web-1", "u1", "node-a", Some("alert")));
    let mode = |r: &Arc<Mutex<Recorder>>| r.lock().unwrap().mode(workload).unwrap();
    wait("the alert annotation applied", || {
        mode(&recorder) == Mode::Alert
    });
    {
        let cache = shared.cache.read().unwrap();
        assert_eq!(cache.len(), 1, "only this node's pods");
        assert!(matches!(
            cache.lookup(Some("u1"), Some("u10000")),
            Lookup::Found(m) if m.pod == "web-1"
        ));
        assert_eq!(cache.namespace("shop").unwrap().labels["team"], "a");
    }
    assert_eq!(
        shared.mode_sources.read().unwrap()[workload],
        "pod annotation baseliner.io/mode on shop/web-1"
    );
    // A change through the watch.
    let took = wait("the enforce annotation applied", || {
        if mode(&recorder) == Mode::Enforce {
            return true;
        }
        if fake.get::<Pod>("shop", "web-1").is_some_and(|p| {
            p.metadata
                .annotations
                .is_some_and(|a| a["baseliner.io/mode"] == "alert")
        }) {
            fake.upsert(&pod("web-1", "u1", "node-a", Some("enforce")));
        }
        false
    });
    println!("annotation change applied in {} ms", took.as_millis());
    // Deleted: gone from the cache.
    fake.delete::<Pod>("shop", "web-1");
    wait("the pod removed", || {
        shared.cache.read().unwrap().is_empty()
    });
    let stats = shared.stats.lock().unwrap().clone();
    assert!(stats.pods_synced && stats.namespaces_synced);
    assert_eq!(stats.pods, 0);
}
