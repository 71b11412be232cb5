use serde_json::json;

use super::*;

const CID: &str = "3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566aabb";

/// A pod as the API serves it, owned by `owner` (kind, name) when given.
pub(crate) fn pod_json(
    namespace: &str,
    name: &str,
    uid: &str,
    owner: Option<(&str, &str)>,
    labels: serde_json::Value,
) -> Pod {
    let owners = owner.map(|(kind, oname)| {
        json!([{ "apiVersion": "apps/v1", "kind": kind, "name": oname, "uid": "o-1",
                 "controller": true }])
    });
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "uid": uid, "labels": labels,
            "ownerReferences": owners,
            "annotations": { "baseliner.io/mode": "alert" },
            "creationTimestamp": "2026-11-26T10:00:00Z"
        },
        "spec": {
            "nodeName": "node-a",
            "initContainers": [{ "name": "setup", "image": "busybox:1.36" }],
            "containers": [
                { "name": "web", "image": "nginx:1.27" },
                { "name": "sidecar", "image": "envoy:1.31" }
            ]
        },
        "status": {
            "podIPs": [{ "ip": "10.1.2.3" }, { "ip": "fd00::3" }],
            "initContainerStatuses": [{
                "name": "setup", "image": "busybox:1.36", "ready": false, "restartCount": 0,
                "imageID": "docker.io/library/busybox@sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                "containerID": "containerd://aaaa000000000000000000000000000000000000000000000000000000000001"
            }],
            "containerStatuses": [{
                "name": "web", "image": "nginx:1.27", "ready": true, "restartCount": 0,
                "imageID": "docker.io/library/nginx@sha256:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
                "containerID": format!("containerd://{CID}")
            }]
        }
    }))
    .unwrap()
}

#[test]
fn deployment_pod_is_attributed_to_its_deployment() {
    let pod = pod_json(
        "shop",
        "web-7d9f8c6b5-x2x9q",
        "uid-1",
        Some(("ReplicaSet", "web-7d9f8c6b5")),
        json!({ "app": "web", "pod-template-hash": "7d9f8c6b5" }),
    );
    let info = PodInfo::from_pod(&pod).unwrap();
    assert_eq!(info.owner(), ("Deployment", "web"));
    assert_eq!(info.mode.as_deref(), Some("alert"));
    assert_eq!(info.created, 1_795_687_200);
    assert_eq!(
        info.ips,
        vec![
            "10.1.2.3".parse::<IpAddr>().unwrap(),
            "fd00::3".parse().unwrap()
        ]
    );
    let names: Vec<_> = info.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["setup", "web", "sidecar"]);
    let web = &info.containers[1];
    assert_eq!(web.id.as_deref(), Some(CID));
    assert_eq!(web.meta.namespace, "shop");
    assert_eq!(web.meta.pod, "web-7d9f8c6b5-x2x9q");
    assert_eq!(web.meta.container, "web");
    assert_eq!(web.meta.image, "nginx:1.27");
    assert_eq!(
        web.meta.revision, "7d9f8c6b5",
        "the pod-template hash names the revision"
    );
    assert_eq!(web.meta.labels["app"], "web");
    assert_eq!(workload_id(&web.meta), "k8s:shop/Deployment/web/web");
    // The sidecar has not started: no id yet, so the pod is not fully started.
    assert_eq!(info.containers[2].id, None);
    assert!(!info.all_started());
    assert_eq!(info.sandbox.container, SANDBOX);
}

#[test]
fn owners_of_every_kind() {
    let owner_of = |kind: &str, name: &str, labels: serde_json::Value| {
        let pod = pod_json("ns", "p-0", "u", Some((kind, name)), labels);
        let (k, n) = owner(&pod);
        format!("{k}/{n}")
    };
    assert_eq!(
        owner_of(
            "ReplicaSet",
            "api-5f6d",
            json!({ "pod-template-hash": "5f6d" })
        ),
        "Deployment/api"
    );
    // A ReplicaSet without a matching hash is its own owner.
    assert_eq!(
        owner_of("ReplicaSet", "rs-manual", json!({})),
        "ReplicaSet/rs-manual"
    );
    assert_eq!(
        owner_of(
            "ReplicaSet",
            "api-5f6d",
            json!({ "pod-template-hash": "9999" })
        ),
        "ReplicaSet/api-5f6d"
    );
    assert_eq!(
        owner_of("Job", "backup-29400000", json!({})),
        "CronJob/backup"
    );
    assert_eq!(owner_of("Job", "migrate-db", json!({})), "Job/migrate-db");
    assert_eq!(owner_of("Job", "run-2", json!({})), "Job/run-2");
    assert_eq!(owner_of("StatefulSet", "pg", json!({})), "StatefulSet/pg");
    assert_eq!(
        owner_of("DaemonSet", "fluent", json!({})),
        "DaemonSet/fluent"
    );
    let bare = pod_json("ns", "debug", "u", None, json!({}));
    assert_eq!(owner(&bare), ("Pod".into(), "debug".into()));
}

#[test]
fn revision_falls_back_to_the_controller_revision_then_the_image_digest() {
    let sts = pod_json(
        "db",
        "pg-0",
        "u",
        Some(("StatefulSet", "pg")),
        json!({ "controller-revision-hash": "pg-6c8d" }),
    );
    let info = PodInfo::from_pod(&sts).unwrap();
    assert_eq!(info.containers[1].meta.revision, "pg-6c8d");
    let bare = pod_json("db", "tool", "u", None, json!({}));
    let info = PodInfo::from_pod(&bare).unwrap();
    assert_eq!(info.containers[1].meta.revision, "sha256-ffeeddccbbaa9988");
    assert_eq!(info.containers[0].meta.revision, "sha256-0011223344556677");
    // Not started: no digest known.
    assert_eq!(info.containers[2].meta.revision, "");
}

#[test]
fn ids_and_digests_parse() {
    assert_eq!(runtime_id("containerd://ABC").as_deref(), Some("abc"));
    assert_eq!(runtime_id("cri-o://abc").as_deref(), Some("abc"));
    assert_eq!(runtime_id("abc").as_deref(), Some("abc"));
    assert_eq!(runtime_id("containerd://"), None);
    assert_eq!(
        image_digest("sha256:0123456789abcdef0000"),
        "sha256-0123456789abcdef"
    );
    assert_eq!(image_digest("nginx:latest"), "");
    assert_eq!(image_digest("x@sha256:short"), "");
    assert_eq!(
        parse_workload_id("k8s:shop/Deployment/web/web"),
        Some(["shop", "Deployment", "web", "web"])
    );
    assert_eq!(parse_workload_id("/system.slice/nginx.service"), None);
}

#[test]
fn pods_without_identity_are_refused() {
    let mut pod = pod_json("ns", "p", "u", None, json!({}));
    pod.metadata.uid = None;
    assert_eq!(PodInfo::from_pod(&pod), None);
}
