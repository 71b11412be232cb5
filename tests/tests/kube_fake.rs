//! The fake Kubernetes API server driven by the real kube client: lists, watches through
//! `kube::runtime::watcher`, server-side apply by several field managers, the status
//! subresource, events, recorded writes and injected failures.

use std::time::Duration;

use baseliner_tests::fake_kube::FakeKube;
use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    core::v1::{Namespace, ObjectReference, Pod},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{
        events::{Event as KubeEvent, EventType, Recorder, Reporter},
        watcher::{self, Event},
    },
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(1);

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nginx"}]},
    }))
    .unwrap()
}

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .unwrap()
}

fn profiles_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("baseliner.io", "v1alpha1", "WorkloadProfile"),
        "workloadprofiles",
    )
}

/// The next watcher event within a second.
async fn next<K>(stream: &mut (impl Stream<Item = watcher::Result<Event<K>>> + Unpin)) -> Event<K> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a watcher event within a second")
        .expect("the watcher stream goes on")
        .expect("a watcher event, not an error")
}

/// Names of the initial objects: Init, InitApply..., InitDone.
async fn initial<K: ResourceExt>(
    stream: &mut (impl Stream<Item = watcher::Result<Event<K>>> + Unpin),
) -> Vec<String> {
    assert!(matches!(next(stream).await, Event::Init));
    let mut names = Vec::new();
    loop {
        match next(stream).await {
            Event::InitApply(o) => names.push(o.name_any()),
            Event::InitDone => return names,
            _ => panic!("unexpected event during the initial list"),
        }
    }
}

#[tokio::test]
async fn pods_of_one_node_listed_and_watched() {
    let fake = FakeKube::start();
    fake.upsert(&pod("a1", "node-a"));
    fake.upsert(&pod("b1", "node-b"));
    let pods: Api<Pod> = Api::all(fake.client());

    let listed = pods
        .list(&ListParams::default().fields("spec.nodeName=node-a"))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        ["a1"]
    );
    assert!(listed.metadata.resource_version.is_some());
    let by_label = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(by_label.items.len(), 2);

    let config = watcher::Config::default().fields("spec.nodeName=node-a");
    let mut stream = watcher::watcher(pods.clone(), config).boxed();
    assert_eq!(initial(&mut stream).await, ["a1"]);

    fake.upsert(&pod("b2", "node-b"));
    fake.upsert(&pod("a2", "node-a"));
    match next(&mut stream).await {
        Event::Apply(p) => assert_eq!(p.name_any(), "a2"),
        _ => panic!("expected the new pod a2"),
    }

    let mut changed = fake.get::<Pod>("default", "a2").unwrap();
    changed
        .annotations_mut()
        .insert("baseliner.io/mode".into(), "alert".into());
    fake.upsert(&changed);
    match next(&mut stream).await {
        Event::Apply(p) => assert_eq!(p.annotations()["baseliner.io/mode"], "alert"),
        _ => panic!("expected the annotation change of a2"),
    }

    // Deleted through the API: recorded, and the watcher sees it.
    Api::<Pod>::namespaced(fake.client(), "default")
        .delete("a2", &DeleteParams::default())
        .await
        .unwrap();
    match next(&mut stream).await {
        Event::Delete(p) => assert_eq!(p.name_any(), "a2"),
        _ => panic!("expected the deletion of a2"),
    }
    // Pods of node-b were never seen, and nothing else is pending.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err()
    );
    let delete = fake.writes().pop().unwrap();
    assert_eq!(
        (delete.method.as_str(), delete.path.as_str()),
        ("DELETE", "/api/v1/namespaces/default/pods/a2")
    );
}

#[tokio::test]
async fn namespaces_watched() {
    let fake = FakeKube::start();
    fake.upsert(&namespace("default"));
    let namespaces: Api<Namespace> = Api::all(fake.client());
    let mut stream = watcher::watcher(namespaces.clone(), watcher::Config::default()).boxed();
    assert_eq!(initial(&mut stream).await, ["default"]);

    namespaces
        .create(&PostParams::default(), &namespace("shop"))
        .await
        .unwrap();
    match next(&mut stream).await {
        Event::Apply(ns) => {
            assert_eq!(ns.name_any(), "shop");
            assert!(ns.uid().is_some() && ns.creation_timestamp().is_some());
        }
        _ => panic!("expected namespace shop"),
    }
    namespaces
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"baseliner.io/mode": "enforce"}}})),
        )
        .await
        .unwrap();
    match next(&mut stream).await {
        Event::Apply(ns) => assert_eq!(ns.annotations()["baseliner.io/mode"], "enforce"),
        _ => panic!("expected the annotation on shop"),
    }
    fake.delete::<Namespace>("", "shop");
    assert!(matches!(next(&mut stream).await, Event::Delete(ns) if ns.name_any() == "shop"));
}

#[tokio::test]
async fn watch_times_out_with_a_bookmark_and_resumes() {
    let fake = FakeKube::start();
    let pods: Api<Pod> = Api::namespaced(fake.client(), "default");
    let rv = fake.resource_version().to_string();
    fake.upsert(&pod("p", "node-a"));
    let started = std::time::Instant::now();
    let events: Vec<_> = pods
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(&events[0], Ok(WatchEvent::Added(p)) if p.name_any() == "p"));
    let Some(Ok(WatchEvent::Bookmark(b))) = events.last() else {
        panic!("the watch ends with a bookmark: {events:?}");
    };
    assert_eq!(
        b.metadata.resource_version,
        fake.resource_version().to_string()
    );

    // Compacted history: an old resource version is gone (410), as after an etcd compaction.
    fake.compact();
    let events: Vec<_> = pods
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(matches!(&events[..], [Ok(WatchEvent::Error(e))] if e.code == 410));
}

#[tokio::test]
async fn server_side_apply_by_two_field_managers() {
    let fake = FakeKube::start();
    fake.list_map("workloadprofiles", "spec.parts", "node");
    let ar = profiles_resource();
    let profiles: Api<DynamicObject> = Api::namespaced_with(fake.client(), "default", &ar);
    let apply = |parts: Value| {
        json!({
            "apiVersion": "baseliner.io/v1alpha1",
            "kind": "WorkloadProfile",
            "metadata": {"name": "web"},
            "spec": {"workload": "default/Deployment/web/main", "parts": parts},
        })
    };
    // Each node's agent applies only its own part.
    for node in ["node-a", "node-b"] {
        let body = apply(json!([{"node": node, "execs": [format!("/bin/{node}")]}]));
        profiles
            .patch(
                "web",
                &PatchParams::apply(&format!("baseliner-{node}")).force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
    }
    let web = profiles.get("web").await.unwrap();
    let parts = web.data["spec"]["parts"].as_array().unwrap();
    assert_eq!(
        parts
            .iter()
            .map(|p| p["node"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["node-a", "node-b"]
    );
    let managers: Vec<(String, String)> = web
        .managed_fields()
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        managers,
        [
            ("baseliner-node-a".to_string(), "Apply".to_string()),
            ("baseliner-node-b".to_string(), "Apply".to_string())
        ]
    );

    // Both own spec.workload with the same value: no conflict. Changing it without force is a
    // conflict; with force it moves to the new owner.
    let mut other = apply(json!([]));
    other["spec"]["workload"] = json!("changed");
    let err = profiles
        .patch(
            "web",
            &PatchParams::apply("intruder"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );

    // node-a leaves: re-applying without its part removes only that part.
    let leave = apply(json!([]));
    let web = profiles
        .patch(
            "web",
            &PatchParams::apply("baseliner-node-a").force(),
            &Patch::Apply(&leave),
        )
        .await
        .unwrap();
    assert_eq!(
        web.data["spec"]["parts"],
        json!([{"node": "node-b", "execs": ["/bin/node-b"]}])
    );
    assert_eq!(web.data["spec"]["workload"], "default/Deployment/web/main");

    // The status subresource changes only .status, and the main resource never does.
    let web = profiles
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Learning"}, "spec": {"workload": "no"}})),
        )
        .await
        .unwrap();
    assert_eq!(web.data["status"]["phase"], "Learning");
    assert_eq!(web.data["spec"]["workload"], "default/Deployment/web/main");
    let web = profiles
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Stable"}})),
        )
        .await
        .unwrap();
    assert_eq!(web.data["status"]["phase"], "Learning");
    let status_apply = json!({
        "apiVersion": "baseliner.io/v1alpha1",
        "kind": "WorkloadProfile",
        "metadata": {"name": "web"},
        "status": {"phase": "Stable"},
    });
    // The merge patch above made its (unnamed) manager own .status.phase: a plain apply of
    // another value conflicts, a forced one takes it over.
    let err = profiles
        .patch_status(
            "web",
            &PatchParams::apply("baseliner-status"),
            &Patch::Apply(&status_apply),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );
    let web = profiles
        .patch_status(
            "web",
            &PatchParams::apply("baseliner-status").force(),
            &Patch::Apply(&status_apply),
        )
        .await
        .unwrap();
    assert_eq!(web.data["status"]["phase"], "Stable");
    assert!(web.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some("baseliner-status")
            && m.subresource.as_deref() == Some("status")
    }));

    // The cluster-wide list sees it; the apply writes carry their field managers.
    let all: Api<DynamicObject> = Api::all_with(fake.client(), &ar);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let applies: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|w| w.content_type.as_deref() == Some("application/apply-patch+yaml"))
        .collect();
    assert_eq!(
        applies[0].field_manager.as_deref(),
        Some("baseliner-node-a")
    );
    assert_eq!(applies[0].param("force"), Some("true"));
    assert_eq!(
        applies[0].path,
        "/apis/baseliner.io/v1alpha1/namespaces/default/workloadprofiles/web"
    );
    assert_eq!(
        applies.last().unwrap().path,
        "/apis/baseliner.io/v1alpha1/namespaces/default/workloadprofiles/web/status"
    );
}

#[tokio::test]
async fn event_posts_recorded() {
    let fake = FakeKube::start();
    let pod = fake.upsert(&pod("web-1", "node-a"));
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let recorder = Recorder::new(fake.client(), Reporter::from("baseliner"));
    recorder
        .publish(
            &KubeEvent {
                type_: EventType::Warning,
                reason: "InvalidMode".into(),
                note: Some("baseliner.io/mode \"watch\" is not learn, alert or enforce".into()),
                action: "ResolveMode".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .unwrap();
    let post = fake
        .writes()
        .into_iter()
        .find(|w| w.method == "POST")
        .expect("an event POST");
    assert_eq!(
        post.path,
        "/apis/events.k8s.io/v1/namespaces/default/events"
    );
    let body = post.body.unwrap();
    assert_eq!(body["reason"], "InvalidMode");
    assert_eq!(body["regarding"]["name"], "web-1");
    let stored = fake.objects("events.events.k8s.io", "default");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["type"], "Warning");

    // The core group's events are served too.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(fake.client());
    let ev: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"generateName": "web-1."},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
        "reason": "Quarantined",
    }))
    .unwrap();
    let created = core.create(&PostParams::default(), &ev).await.unwrap();
    assert!(created.name_any().starts_with("web-1."));
    assert_eq!(fake.objects("events", "default").len(), 1);
}

#[tokio::test]
async fn pod_label_patch_network_policy_and_delete_recorded() {
    let fake = FakeKube::start();
    fake.upsert(&pod("web-1", "node-a"));
    let pods: Api<Pod> = Api::default_namespaced(fake.client());
    let patched = pods
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"baseliner.io/quarantine": "true"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.labels()["app"], "web");
    assert_eq!(patched.labels()["baseliner.io/quarantine"], "true");
    pods.patch(
        "web-1",
        &PatchParams::default(),
        &Patch::Strategic(json!({"metadata": {"labels": {"tier": "front"}}})),
    )
    .await
    .unwrap();
    let stored = fake.get::<Pod>("default", "web-1").unwrap();
    assert_eq!(stored.labels().len(), 3);

    let policy: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "baseliner-quarantine-web-1"},
        "spec": {
            "podSelector": {"matchLabels": {"baseliner.io/quarantine": "true"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }))
    .unwrap();
    let policies: Api<NetworkPolicy> = Api::default_namespaced(fake.client());
    policies
        .patch(
            "baseliner-quarantine-web-1",
            &PatchParams::apply("baseliner").force(),
            &Patch::Apply(&policy),
        )
        .await
        .unwrap();
    assert!(
        fake.get::<NetworkPolicy>("default", "baseliner-quarantine-web-1")
            .is_some()
    );
    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    assert!(fake.get::<Pod>("default", "web-1").is_none());

    let writes = fake.writes();
    let summary: Vec<(&str, &str, Option<&str>)> = writes
        .iter()
        .map(|w| {
            (
                w.method.as_str(),
                w.path.as_str(),
                w.content_type.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "PATCH",
                "/api/v1/namespaces/default/pods/web-1",
                Some("application/merge-patch+json")
            ),
            (
                "PATCH",
                "/api/v1/namespaces/default/pods/web-1",
                Some("application/strategic-merge-patch+json")
            ),
            (
                "PATCH",
                "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/baseliner-quarantine-web-1",
                Some("application/apply-patch+yaml")
            ),
            (
                "DELETE",
                "/api/v1/namespaces/default/pods/web-1",
                Some("application/json")
            ),
        ]
    );
    assert_eq!(
        writes[0].body,
        Some(json!({"metadata": {"labels": {"baseliner.io/quarantine": "true"}}}))
    );
    assert_eq!(writes[2].field_manager.as_deref(), Some("baseliner"));
    assert!(writes.iter().all(|w| w.status < 300));
}

#[tokio::test]
async fn injected_failures_reach_the_client() {
    let fake = FakeKube::start();
    fake.upsert(&pod("web-1", "node-a"));
    let pods: Api<Pod> = Api::default_namespaced(fake.client());
    let label = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));

    fake.fail_next("PATCH", "/api/v1/namespaces/default/pods", 500);
    let err = pods
        .patch("web-1", &PatchParams::default(), &label)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 500),
        "{err}"
    );
    assert_eq!(fake.writes()[0].status, 500);
    assert!(
        fake.get::<Pod>("default", "web-1")
            .unwrap()
            .labels()
            .get("x")
            .is_none()
    );
    // The failure was used up.
    pods.patch("web-1", &PatchParams::default(), &label)
        .await
        .unwrap();

    // A 503 is retried by the client itself.
    fake.fail_next("GET", "/api/v1/namespaces/default/pods/web-1", 503);
    pods.get("web-1").await.unwrap();
    let gets = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/namespaces/default/pods/web-1"))
        .count();
    assert_eq!(gets, 2);

    // The API's own errors: 404, 409 AlreadyExists.
    let err = pods.get("missing").await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"));
    let err = pods
        .create(&PostParams::default(), &pod("web-1", "node-a"))
        .await
        .unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));
}

/// The fake serves plain HTTP callers from a test without a runtime, and answers unknown paths
/// with a 404 Status.
#[test]
fn sync_callers_and_unknown_paths() {
    let fake = FakeKube::start();
    fake.upsert(&pod("web-1", "node-a"));
    let port = fake.addr().port();
    let (code, body) =
        baseliner_tests::http_get(port, "/api/v1/pods?fieldSelector=metadata.name%3Dweb-1")
            .expect("the fake answers");
    assert_eq!(code, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"][0]["metadata"]["name"], "web-1");
    let (code, body) = baseliner_tests::http_get(port, "/apis/nothing.io/v1/things").unwrap();
    assert_eq!(code, 404);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["code"].as_u64()),
        (Some("Status"), Some(404))
    );

    // A client made outside any runtime works from one started later.
    let client = fake.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pods = rt
        .block_on(Api::<Pod>::all(client).list(&ListParams::default()))
        .unwrap();
    assert_eq!(pods.items.len(), 1);
}

/// kube's watcher resumes after the server ends its watch, and lists again after a 410 Gone.
#[tokio::test]
async fn watcher_recovers_from_closed_watches_and_compaction() {
    let fake = FakeKube::start();
    fake.upsert(&pod("a1", "node-a"));
    let pods: Api<Pod> = Api::default_namespaced(fake.client());
    let mut stream = watcher::watcher(pods, watcher::Config::default()).boxed();
    assert_eq!(initial(&mut stream).await, ["a1"]);

    // The stream ends; the watcher watches again from the last resource version it saw.
    fake.close_watches();
    fake.upsert(&pod("a2", "node-a"));
    assert!(matches!(next(&mut stream).await, Event::Apply(p) if p.name_any() == "a2"));

    // History is compacted while no watch is open: the re-watch gets 410, the watcher reports
    // the error and lists again.
    fake.compact();
    fake.close_watches();
    let err = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event within a second")
        .unwrap();
    assert!(err.is_err(), "expected the 410 error first");
    assert_eq!(initial(&mut stream).await, ["a1", "a2"]);
    let requests = fake.requests();
    let last = requests.last().unwrap();
    assert!(
        last.starts_with("GET /api/v1/namespaces/default/pods?") && !last.contains("watch=true"),
        "the watcher listed again: {requests:?}"
    );
}

/// A process started by a test finds the fake through the kubeconfig it writes.
#[tokio::test]
async fn kubeconfig_points_at_the_fake() {
    let fake = FakeKube::start();
    fake.upsert(&namespace("default"));
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&fake.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let namespaces = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(namespaces.items.len(), 1);
}

/// JSON patches apply, and a replace with a stale resourceVersion is a 409 conflict.
#[tokio::test]
async fn json_patch_and_stale_replace() {
    let fake = FakeKube::start();
    let stale = fake.upsert(&pod("web-1", "node-a"));
    let client = fake.client();
    let request = axum::http::Request::patch("/api/v1/namespaces/default/pods/web-1")
        .header("content-type", "application/json-patch+json")
        .body(
            json!([{"op": "add", "path": "/metadata/labels/quarantine", "value": "true"}])
                .to_string()
                .into_bytes(),
        )
        .unwrap();
    let patched: Pod = client.request(request).await.unwrap();
    assert_eq!(patched.labels()["quarantine"], "true");
    let rv = |p: &Pod| p.resource_version().unwrap().parse::<u64>().unwrap();
    assert!(rv(&patched) > rv(&stale));

    let pods: Api<Pod> = Api::default_namespaced(client);
    let err = pods
        .replace("web-1", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );
    let mut fresh = pods.get("web-1").await.unwrap();
    fresh.labels_mut().remove("quarantine");
    let replaced = pods
        .replace("web-1", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert!(!replaced.labels().contains_key("quarantine"));
    assert_eq!(replaced.metadata.generation, Some(1), "labels are not spec");
}
