//! Kubernetes responses against the fake API server: the `Responder` with a quarantine rule
//! and a delete-pod rule, acting through `KubeResponder`. A quarantined pod ends labelled and
//! selected by a deny-all NetworkPolicy, a deleted pod is gone, each action is audited twice
//! (requested, then its outcome), and a pod in a protected namespace is never touched.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use api::AuditRecord;
use baseliner_tests::fake_kube::FakeKube;
use k8s_openapi::api::{core::v1::Pod, networking::v1::NetworkPolicy};
use kube::ResourceExt;
use learner::{
    control::SharedRecorder,
    kubernetes::respond::KubeResponder,
    recorder::Recorder,
    respond::{Action, RespondConfig, Responder, ResponseRule, audit},
};
use profiles::{mode::Mode, redact::Redactor, store::Store};
use serde_json::{Value, json};

fn pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "main", "image": "nginx"}]},
    }))
    .unwrap()
}

/// An alert (as JSON: the test crate does not name the scorer's types) of `rule` about an
/// exec in container `main` of pod `namespace/name`.
fn alert(namespace: &str, name: &str, rule: &str) -> Value {
    let workload = format!("k8s:{namespace}/Deployment/web/main");
    json!({
        "key": format!("{rule}-{namespace}-{name}"),
        "workload": workload,
        "severity": "critical",
        "score": 0.95,
        "summary": format!("{rule} in {name}"),
        "reasons": [{"rule": rule, "weight": 0.95, "text": format!("{rule} in {name}")}],
        "event": {
            "schema": 1, "ts_ns": 1,
            "workload": {
                "id": workload, "cgroup_id": 7, "cgroup": format!("/kubepods/{name}/ctr"),
                "k8s": {
                    "namespace": namespace, "pod": name, "container": "main",
                    "image": "nginx", "owner_kind": "Deployment", "owner_name": "web",
                    "labels": {"app": "web"},
                },
            },
            "pid": 10, "tid": 10, "ppid": 1, "uid": 0, "gid": 0, "comm": "sh",
            "kind": "exec", "filename": "/bin/sh", "argv": ["sh"], "argv_truncated": false,
        },
        "count": 1, "first_ns": 1, "last_ns": 1,
    })
}

fn rule(action: Action, alert_rule: &str) -> ResponseRule {
    ResponseRule {
        action,
        min_severity: severity("high"),
        rules: vec![alert_rule.into()],
        modes: Vec::new(),
    }
}

/// A severity by name (the test crate does not name the scorer's types).
fn severity<S: serde::de::DeserializeOwned>(name: &str) -> S {
    serde_json::from_value(json!(name)).unwrap()
}

/// Responds to `alert` as the event loop does (the recorder held) and returns the outcomes.
fn respond(responder: &mut Responder, recorder: &SharedRecorder, alert: Value) -> Vec<String> {
    let alert = serde_json::from_value(alert).unwrap();
    let r = recorder.lock().unwrap();
    responder
        .respond(&alert, Mode::Alert, r.store())
        .into_iter()
        .map(|t| t.outcome)
        .collect()
}

/// The audit log once it holds `n` records (within five seconds).
async fn audit_log(recorder: &SharedRecorder, n: usize) -> Vec<AuditRecord> {
    for _ in 0..500 {
        let all = audit::all(recorder.lock().unwrap().store()).unwrap();
        if all.len() >= n {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} audit records");
}

/// The (action, target, outcome) of each record.
fn summary(log: &[AuditRecord]) -> Vec<(String, String, String)> {
    log.iter()
        .map(|r| {
            (
                r.action.action.clone(),
                r.action.target.clone(),
                r.action.outcome.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_and_delete_reach_the_api_and_are_audited_except_in_protected_namespaces() {
    let fake = FakeKube::start();
    fake.upsert(&pod("shop", "web-1"));
    fake.upsert(&pod("shop", "web-2"));
    fake.upsert(&pod("kube-system", "dns-1"));
    let dir = baseliner_tests::temp_dir("kube-respond");
    let recorder: SharedRecorder = Arc::new(Mutex::new(Recorder::new(
        Store::open(&dir.join("store")).unwrap(),
        Redactor::default(),
        Mode::Alert,
    )));
    let hooks = KubeResponder::new(
        fake.client(),
        &tokio::runtime::Handle::current(),
        recorder.clone(),
    );
    // kube-system is protected by default.
    let config = RespondConfig {
        rules: vec![
            rule(Action::Quarantine, "shell-from-server"),
            rule(Action::DeletePod, "crypto-miner"),
        ],
        ..RespondConfig::default()
    };
    assert_eq!(config.protected_namespaces, ["kube-system"]);
    let mut responder = Responder::new(config, Box::new(hooks));

    // Requested at once, from the event loop.
    assert_eq!(
        respond(
            &mut responder,
            &recorder,
            alert("shop", "web-1", "shell-from-server")
        ),
        ["requested: quarantine of pod shop/web-1"]
    );
    assert_eq!(
        respond(
            &mut responder,
            &recorder,
            alert("shop", "web-2", "crypto-miner")
        ),
        ["requested: deletion of pod shop/web-2"]
    );

    // Then done, and audited again.
    let log = audit_log(&recorder, 4).await;
    let mut got = summary(&log);
    got.sort();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        got,
        [
            s("delete-pod", "pod shop/web-2", "done: deleted"),
            s(
                "delete-pod",
                "pod shop/web-2",
                "requested: deletion of pod shop/web-2"
            ),
            s(
                "quarantine",
                "pod shop/web-1",
                "done: labelled and isolated by NetworkPolicy baseliner-quarantine-web-1"
            ),
            s(
                "quarantine",
                "pod shop/web-1",
                "requested: quarantine of pod shop/web-1"
            ),
        ],
        "{log:#?}"
    );
    for rec in &log {
        assert_eq!(rec.actor, "agent");
        assert_eq!(rec.workload, "k8s:shop/Deployment/web/main");
        let pod = if rec.action.action == "quarantine" {
            "web-1"
        } else {
            "web-2"
        };
        assert!(rec.alert_key.ends_with(&format!("-shop-{pod}")), "{rec:?}");
    }
    // Each action's outcome comes after its request.
    for action in ["quarantine", "delete-pod"] {
        let times: Vec<(u64, bool)> = log
            .iter()
            .filter(|r| r.action.action == action)
            .map(|r| (r.action.at_ns, r.action.outcome.starts_with("requested")))
            .collect();
        assert_eq!(times.len(), 2);
        assert!(
            times[0].1 && !times[1].1 && times[0].0 < times[1].0,
            "{times:?}"
        );
    }

    // The quarantined pod: labelled (its own labels kept), and selected by a deny-all policy.
    let web1 = fake
        .get::<Pod>("shop", "web-1")
        .expect("web-1 is still there");
    let labels = web1.labels();
    assert_eq!(labels["app"], "web");
    assert_eq!(labels["baseliner.io/quarantine"], "true");
    assert_eq!(labels["baseliner.io/quarantine-pod"], "web-1");
    let policies = fake.list::<NetworkPolicy>("shop");
    assert_eq!(policies.len(), 1);
    let policy = &policies[0];
    assert_eq!(policy.name_any(), "baseliner-quarantine-web-1");
    assert_eq!(policy.labels()["app.kubernetes.io/managed-by"], "baseliner");
    let spec = policy.spec.as_ref().unwrap();
    let selector = spec.pod_selector.as_ref().unwrap();
    assert!(selector.match_expressions.is_none());
    let wanted = selector.match_labels.as_ref().unwrap();
    assert!(!wanted.is_empty());
    assert!(
        wanted.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{wanted:?} does not select {labels:?}"
    );
    // …and no other pod.
    let other = pod("shop", "web-3");
    assert!(!wanted.iter().all(|(k, v)| other.labels().get(k) == Some(v)));
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..])
    );
    assert!(spec.ingress.is_none() && spec.egress.is_none());

    // The deleted pod is gone.
    assert!(fake.get::<Pod>("shop", "web-2").is_none());

    // Quarantining again is harmless: same labels, same single policy.
    fake.clear_writes();
    respond(
        &mut responder,
        &recorder,
        alert("shop", "web-1", "shell-from-server"),
    );
    let log = audit_log(&recorder, 6).await;
    assert_eq!(
        log.last().unwrap().action.outcome,
        "done: labelled and isolated by NetworkPolicy baseliner-quarantine-web-1"
    );
    assert_eq!(fake.list::<NetworkPolicy>("shop").len(), 1);
    assert!(fake.writes().iter().all(|w| w.status < 300));

    // A protected namespace: skipped and audited, and nothing reaches the API.
    fake.clear_writes();
    for rule in ["shell-from-server", "crypto-miner"] {
        assert_eq!(
            respond(
                &mut responder,
                &recorder,
                alert("kube-system", "dns-1", rule)
            ),
            ["skipped: the namespace kube-system is protected"]
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.writes(), []);
    let dns = fake
        .get::<Pod>("kube-system", "dns-1")
        .expect("dns-1 is untouched");
    assert!(!dns.labels().contains_key("baseliner.io/quarantine"));
    assert!(fake.list::<NetworkPolicy>("kube-system").is_empty());
    assert_eq!(
        audit::all(recorder.lock().unwrap().store()).unwrap().len(),
        8
    );

    let _ = std::fs::remove_dir_all(&dir);
}
