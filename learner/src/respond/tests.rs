use std::sync::{Arc, Mutex};

use profiles::{Event, KubeMeta};
use scorer::alert::Reason;
use serde_json::json;

use super::*;

/// An exec event of a pod's container; a host workload when `pod` is `None`.
fn event(pod: Option<(&str, &str)>) -> Event {
    let mut e: Event = serde_json::from_value(json!({
        "schema": 1, "ts_ns": 1,
        "workload": {"id": "/system.slice/web.service", "cgroup_id": 7,
                     "cgroup": "/system.slice/web.service"},
        "pid": 4242, "tid": 4242, "ppid": 1, "uid": 0, "gid": 0, "comm": "sh",
        "kind": "exec", "filename": "/bin/sh", "argv": ["sh"], "argv_truncated": false
    }))
    .unwrap();
    if let Some((namespace, name)) = pod {
        e.workload.id = format!("k8s:{namespace}/Deployment/web/main");
        e.workload.cgroup = "/kubepods/pod1/ctr".into();
        e.workload.k8s = Some(Arc::new(KubeMeta {
            namespace: namespace.into(),
            pod: name.into(),
            container: "main".into(),
            owner_kind: "Deployment".into(),
            owner_name: "web".into(),
            ..Default::default()
        }));
    }
    e
}

fn alert(pod: Option<(&str, &str)>) -> Alert {
    let reason = Reason::new("crypto-miner", 0.95, "a miner".into(), None);
    Alert::new(&event(pod), "exec /tmp/xmrig", vec![reason])
}

fn rule(action: Action) -> ResponseRule {
    ResponseRule {
        action,
        min_severity: Severity::High,
        rules: Vec::new(),
        modes: Vec::new(),
    }
}

/// Hooks that record the pods they were called for and report them requested.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<(Action, String)>>>);

impl Recording {
    fn call(&self, action: Action, alert: &Alert) -> Result<String, String> {
        let Some(k) = &alert.event.workload.k8s else {
            return Err("skipped: not a pod".into());
        };
        let pod = format!("{}/{}", k.namespace, k.pod);
        self.0.lock().unwrap().push((action, pod.clone()));
        Ok(format!("requested: {} {pod}", action.as_str()))
    }

    fn calls(&self) -> Vec<(Action, String)> {
        self.0.lock().unwrap().clone()
    }
}

impl KubeHooks for Recording {
    fn quarantine(&self, alert: &Alert) -> Result<String, String> {
        self.call(Action::Quarantine, alert)
    }
    fn delete_pod(&self, alert: &Alert) -> Result<String, String> {
        self.call(Action::DeletePod, alert)
    }
}

fn responder(actions: &[Action], hooks: Box<dyn KubeHooks>) -> Responder {
    let config = RespondConfig {
        rules: actions.iter().copied().map(rule).collect(),
        ..RespondConfig::default()
    };
    Responder::new(config, hooks)
}

fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path()).unwrap()
}

#[test]
fn the_hooks_get_the_alert_of_the_pod_and_each_action_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let hooks = Recording::default();
    let mut r = responder(
        &[Action::Quarantine, Action::DeletePod],
        Box::new(hooks.clone()),
    );
    let a = alert(Some(("shop", "web-abc-1")));
    let taken = r.respond(&a, Mode::Alert, &store);
    let got: Vec<(&str, &str, &str)> = taken
        .iter()
        .map(|t| (t.action.as_str(), t.target.as_str(), t.outcome.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "quarantine",
                "pod shop/web-abc-1",
                "requested: quarantine shop/web-abc-1"
            ),
            (
                "delete-pod",
                "pod shop/web-abc-1",
                "requested: delete-pod shop/web-abc-1"
            ),
        ]
    );
    assert_eq!(
        hooks.calls(),
        [
            (Action::Quarantine, "shop/web-abc-1".to_string()),
            (Action::DeletePod, "shop/web-abc-1".to_string()),
        ]
    );
    let audit = audit::all(&store).unwrap();
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .all(|rec| rec.alert_key == a.key && rec.actor == "agent")
    );
}

#[test]
fn a_protected_namespace_is_never_acted_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let hooks = Recording::default();
    let mut r = responder(
        // Kill is refused before any signal is sent.
        &[Action::Kill, Action::Quarantine, Action::DeletePod],
        Box::new(hooks.clone()),
    );
    let taken = r.respond(
        &alert(Some(("kube-system", "coredns-1"))),
        Mode::Alert,
        &store,
    );
    assert_eq!(taken.len(), 3);
    for t in &taken {
        assert_eq!(t.outcome, "skipped: the namespace kube-system is protected");
    }
    assert!(hooks.calls().is_empty());
    // Skips are audited too.
    assert_eq!(audit::all(&store).unwrap().len(), 3);
}

#[test]
fn a_protected_cgroup_covers_pods_by_their_cgroup_path() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Recording::default();
    let mut r = Responder::new(
        RespondConfig {
            rules: vec![rule(Action::Quarantine)],
            protected_cgroups: vec!["/kubepods/".into()],
            ..RespondConfig::default()
        },
        Box::new(hooks.clone()),
    );
    let taken = r.respond(&alert(Some(("shop", "web-1"))), Mode::Alert, &store(&dir));
    assert_eq!(
        taken[0].outcome,
        "skipped: the cgroup /kubepods/ is protected"
    );
    assert!(hooks.calls().is_empty());
}

#[test]
fn a_host_workload_is_skipped_by_the_kubernetes_actions() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let mut r = responder(&[Action::Quarantine], Box::new(NoKubernetes));
    let taken = r.respond(&alert(None), Mode::Alert, &store);
    assert_eq!(taken[0].target, "the pod of /system.slice/web.service");
    assert_eq!(taken[0].outcome, "skipped: not running on Kubernetes");

    let hooks = Recording::default();
    let mut r = responder(&[Action::DeletePod], Box::new(hooks.clone()));
    let taken = r.respond(&alert(None), Mode::Alert, &store);
    assert_eq!(taken[0].outcome, "skipped: not a pod");
    // Not in learn mode: no rule applies.
    assert!(
        r.respond(&alert(Some(("shop", "web-1"))), Mode::Learn, &store)
            .is_empty()
    );
}

#[test]
fn hook_errors_are_failures() {
    struct Failing;
    impl KubeHooks for Failing {
        fn quarantine(&self, _: &Alert) -> Result<String, String> {
            Err("the response queue is gone".into())
        }
        fn delete_pod(&self, _: &Alert) -> Result<String, String> {
            Err("skipped: busy".into())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = responder(&[Action::Quarantine, Action::DeletePod], Box::new(Failing));
    let taken = r.respond(&alert(Some(("shop", "web-1"))), Mode::Alert, &store(&dir));
    assert_eq!(taken[0].outcome, "failed: the response queue is gone");
    assert_eq!(taken[1].outcome, "skipped: busy");
}
