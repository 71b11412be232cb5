//! The agent on "Kubernetes" without a cluster (root; runs in CI): a cgroup2 tree shaped as the
//! kubelet makes it for a containerd pod (`kubepods/besteffort/pod<uid>/<container id>`), the
//! pod served by the fake API server on loopback, and `baseliner run` with `[kubernetes]` on.
//!
//! Checks that the pod's events carry its namespace, name and container (also the events that
//! happened before the watch reported the pod), that the workload is named by its Deployment,
//! that the `baseliner.io/mode` annotation switches the mode through the watch within seconds,
//! that an invalid value keeps the mode and is reported as a Kubernetes Event, that the API
//! refuses to set an annotated mode, that an unknown binary then alerts with the pod's
//! metadata, and that in enforce mode the pod's cgroup blocks an unknown program.

use std::{
    os::unix::process::ExitStatusExt,
    path::Path,
    time::{Duration, Instant},
};

use baseliner_tests::{
    LearnAgent, TestCgroup, fake_kube::FakeKube, live_enabled, marker_program, run_cli, run_cli_ok,
    temp_dir, wait_alert, wait_enforcing,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{Value, json};

const NODE: &str = "node-a";
const UID: &str = "6b1f3c2a-9d4e-4f5a-8b7c-0123456789ab";
const CID: &str = "5e2a1b9c8d7f6e5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
const WORKLOAD: &str = "k8s:shop/Deployment/web/app";

/// The pod of Deployment `web` on this node with container `app` started as `CID`.
fn pod(mode: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-5d8f7c9b4-q7x2z", "namespace": "shop", "uid": UID,
            "labels": { "app": "web", "pod-template-hash": "5d8f7c9b4" },
            "annotations": { "baseliner.io/mode": mode },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-5d8f7c9b4", "uid": "rs-1", "controller": true }]
        },
        "spec": { "nodeName": NODE, "containers": [{ "name": "app", "image": "shop/web:1.4" }] },
        "status": { "containerStatuses": [{
            "name": "app", "image": "shop/web:1.4", "ready": true, "restartCount": 0,
            "imageID": "docker.io/shop/web@sha256:aa11bb22cc33dd44ee55ff6677889900aa11bb22cc33dd44ee55ff6677889900",
            "containerID": format!("containerd://{CID}")
        }]}
    }))
    .unwrap()
}

fn status(store: &Path) -> Value {
    serde_json::from_slice(&run_cli_ok(store, &["status", "--json"])).unwrap()
}

/// The workload's entry in `baseliner status --json`.
fn workload(store: &Path) -> Option<Value> {
    status(store)["workloads"]
        .as_array()?
        .iter()
        .find(|w| w["workload"] == WORKLOAD)
        .cloned()
}

/// Waits (at most 15 s) until the workload's mode is `mode`; how long it took.
fn wait_mode(store: &Path, mode: &str) -> Duration {
    let started = Instant::now();
    loop {
        if workload(store).is_some_and(|w| w["mode"] == mode) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the mode of {WORKLOAD} never became {mode}: {:#}",
            status(store)
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn pod_metadata_annotation_modes_and_alerts() {
    if !live_enabled("pod_metadata_annotation_modes_and_alerts") {
        return;
    }
    let dir = temp_dir("kube-live");
    let store = dir.join("store");
    let alerts = dir.join("alerts.jsonl");
    let kubeconfig = dir.join("kubeconfig");
    let config = dir.join("config.toml");
    let fake = FakeKube::start();
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[kubernetes]\nenabled = true\nnode_name = \"{NODE}\"\nhold = \"20s\"\n\
             publish_every = \"300ms\"\n"
        ),
    )
    .unwrap();
    let mut ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "shop" }
    }))
    .unwrap();
    fake.upsert(&ns);

    // kubepods/besteffort/pod<uid>/<container id>, as the kubelet's cgroupfs driver makes it.
    let top = TestCgroup::new("kube").unwrap();
    let kubepods = top.child("kubepods").unwrap();
    let qos = kubepods.child("besteffort").unwrap();
    let pod_cg = qos.child(&format!("pod{UID}")).unwrap();
    let ctr = pod_cg.child(CID).unwrap();

    let agent = LearnAgent::start_env(
        &store,
        &[&top.path],
        &[
            "--config",
            config.to_str().unwrap(),
            "--alerts-jsonl",
            alerts.to_str().unwrap(),
            "--flush-interval",
            "0.2",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    )
    .unwrap();

    // The container runs before the watch has reported its pod: its events wait for it.
    let data = dir.join("data.txt");
    std::fs::write(&data, "x").unwrap();
    let normal = format!(
        "for i in 1 2 3; do /bin/cat {} >/dev/null; /bin/ls / >/dev/null; done",
        data.display()
    );
    ctr.run_bash(&normal);
    std::thread::sleep(Duration::from_millis(500));
    fake.upsert(&pod("learn"));
    let learned = Instant::now();
    loop {
        let w = workload(&store);
        if w.as_ref()
            .is_some_and(|w| w["revisions"].as_array().is_some_and(|r| !r.is_empty()))
        {
            break;
        }
        assert!(
            learned.elapsed() < Duration::from_secs(15),
            "no profile for {WORKLOAD}: {:#}",
            status(&store)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let w = workload(&store).unwrap();
    assert_eq!(w["mode"], "learn");
    assert_eq!(w["mode_source"], "annotation", "{w:#}");
    assert_eq!(
        w["mode_annotation"],
        "pod annotation baseliner.io/mode on shop/web-5d8f7c9b4-q7x2z"
    );
    let revision = &w["revisions"][0]["revision"];
    assert_eq!(
        revision, "5d8f7c9b4",
        "the pod-template hash names the revision"
    );
    ctr.run_bash(&normal); // learned with metadata from the start now
    std::thread::sleep(Duration::from_millis(600));

    // The annotation switches the mode through the watch.
    fake.upsert(&pod("alert"));
    let took = wait_mode(&store, "alert");
    println!(
        "annotation learn → alert applied in {} ms",
        took.as_millis()
    );

    // The API will not override the annotation.
    let out = run_cli(&store, &["mode", "set", WORKLOAD, "enforce"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("baseliner.io/mode"), "{err}");
    assert_eq!(workload(&store).unwrap()["mode"], "alert");

    // An invalid value keeps the mode and is reported on the pod as a Kubernetes Event.
    fake.upsert(&pod("block-everything"));
    let started = Instant::now();
    let event = loop {
        let posted = fake.writes().into_iter().find(|w| {
            w.method == "POST"
                && w.path.ends_with("/events")
                && w.body
                    .as_ref()
                    .is_some_and(|b| b["reason"] == "InvalidMode")
        });
        if let Some(w) = posted {
            break w.body.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no InvalidMode event: {:?}",
            fake.requests()
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "Pod");
    assert_eq!(event["regarding"]["name"], "web-5d8f7c9b4-q7x2z");
    assert!(
        event["note"]
            .as_str()
            .is_some_and(|n| n.contains("block-everything")),
        "{event}"
    );
    assert_eq!(workload(&store).unwrap()["mode"], "alert");

    // An unknown binary alerts, with the pod's metadata.
    let copy = dir.join("unknown-tool");
    std::fs::copy("/bin/true", &copy).unwrap();
    ctr.run_bash(&copy.display().to_string());
    let alert = wait_alert(&alerts, "unknown-tool");
    assert_eq!(alert["workload"], WORKLOAD);
    let k8s = &alert["event"]["workload"]["k8s"];
    assert_eq!(k8s["namespace"], "shop");
    assert_eq!(k8s["pod"], "web-5d8f7c9b4-q7x2z");
    assert_eq!(k8s["container"], "app");
    assert_eq!(k8s["image"], "shop/web:1.4");
    assert_eq!(k8s["owner_kind"], "Deployment");
    assert_eq!(k8s["labels"]["app"], "web");

    // The namespace annotation applies once the pod's is gone.
    ns.metadata.annotations =
        Some([("baseliner.io/mode".to_string(), "dry-run".to_string())].into());
    fake.upsert(&ns);
    let mut bare = pod("x");
    bare.metadata.annotations = None;
    fake.upsert(&bare);
    wait_mode(&store, "dry-run");

    // This node's part of the shared profile, published under its own field manager.
    let (ns_name, wp_name) = learner::kubernetes::crd::object_name(WORKLOAD).unwrap();
    let started = Instant::now();
    let wp = loop {
        if let Some(o) = fake.object("workloadprofiles", &ns_name, &wp_name)
            && o["status"]["entries"].as_u64() > Some(0)
            && o["status"]["mode"] == "dry-run"
        {
            break o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no WorkloadProfile {ns_name}/{wp_name}: {:?}",
            fake.requests()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(wp["spec"]["parts"][0]["node"], NODE);
    assert_eq!(wp["spec"]["parts"][0]["revision"], "5d8f7c9b4");
    assert!(
        fake.writes().iter().any(
            |w| w.path.ends_with(&format!("/workloadprofiles/{wp_name}"))
                && w.field_manager.as_deref() == Some("baseliner/node-a")
        ),
        "applied under the node's field manager"
    );

    // A NetworkPolicy from the profile, selecting the pod's stable labels.
    let yaml = String::from_utf8(run_cli_ok(&store, &["netpol", WORKLOAD])).unwrap();
    assert!(yaml.contains("kind: NetworkPolicy"), "{yaml}");
    assert!(yaml.contains("namespace: shop"), "{yaml}");
    assert!(yaml.contains("app: web"), "{yaml}");
    assert!(!yaml.contains("pod-template-hash"), "{yaml}");
    // The namespace's policies (none) checked against what the pod did: nothing to deny.
    let check = run_cli(&store, &["netpol", "--check", "shop", "--json"]);
    assert!(check.status.success(), "{check:?}");
    let check: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(check["policies"], 0);
    assert_eq!(check["denied"], json!([]));
    assert!(
        fake.requests().iter().any(
            |r| r.starts_with("GET /apis/networking.k8s.io/v1/namespaces/shop/networkpolicies")
        ),
        "the policies were read from the API server"
    );

    // Enforce from the namespace annotation: the container's cgroup gets the allow-list, an
    // unknown program is killed before it runs, a learned one still runs.
    ns.metadata.annotations =
        Some([("baseliner.io/mode".to_string(), "enforce".to_string())].into());
    fake.upsert(&ns);
    wait_mode(&store, "enforce");
    wait_enforcing(&store, WORKLOAD, true);
    let marker = dir.join("marker");
    let prog = dir.join("not-learned");
    marker_program(&prog, &marker);
    let status_of = ctr.command(&prog).status().unwrap();
    assert_eq!(status_of.signal(), Some(libc::SIGKILL), "{status_of}");
    assert!(!marker.exists(), "the unknown program ran");
    ctr.run_bash(&normal);
    // Back to alert: blocking ends at once.
    ns.metadata.annotations = Some([("baseliner.io/mode".to_string(), "alert".to_string())].into());
    fake.upsert(&ns);
    wait_enforcing(&store, WORKLOAD, false);
    let ran = ctr.command(&prog).status().unwrap();
    assert!(ran.success(), "{ran}");
    assert!(marker.exists());

    let k = status(&store)["agent"]["kubernetes"].clone();
    assert_eq!(
        k["unattributed"], 0,
        "every pod event got its metadata: {k:#}"
    );
    assert!(
        k["held"].as_u64() > Some(0),
        "the early events waited: {k:#}"
    );
    assert_eq!(k["pods"], 1);
    let (exit, log) = agent.stop().unwrap();
    assert!(exit.success(), "agent failed: {exit}\n{}", log.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
