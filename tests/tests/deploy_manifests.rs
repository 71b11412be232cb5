//! The Kubernetes manifests in deploy/ (the kustomize base): `deploy/check-manifests.sh`
//! (schemas and checkov) passes, and the rendered objects hold what a reviewer checks first:
//! no privileged container, exactly the listed capabilities, a read-only root filesystem, every
//! namespaced object in `baseliner`, RBAC no wider than the agent needs and without wildcards,
//! and an agent configuration that the agent accepts.
//!
//! Under CI=true everything runs (kubectl is on the machine image; deploy/toolchain.sh with
//! BASELINER_TEST_PACKAGES=1 installs the checkers). Elsewhere a test whose tools are missing
//! prints `SKIP deploy_manifests: <reason>`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde::Deserialize as _;
use yaml_serde::Value;

const NAMESPACE: &str = "baseliner";
/// Kinds of the base that are cluster-scoped; every other object must be in [`NAMESPACE`].
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
];
/// The capabilities the agent's container adds, and no other.
const CAPABILITIES: &[&str] = &["BPF", "PERFMON", "SYS_RESOURCE", "KILL", "NET_ADMIN"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn skip(reason: &str) {
    println!("SKIP deploy_manifests: {reason}");
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The base rendered by `kubectl kustomize deploy/`, one value per object; `None` (after
/// printing why) when kubectl is missing outside CI.
fn rendered() -> Option<&'static [Value]> {
    static RENDERED: OnceLock<Option<Vec<Value>>> = OnceLock::new();
    RENDERED
        .get_or_init(|| {
            if !have("kubectl") {
                assert!(!ci(), "CI=true but kubectl is not installed");
                skip("kubectl is not installed (it renders the kustomize base)");
                return None;
            }
            let out = Command::new("kubectl")
                .arg("kustomize")
                .arg(repo_root().join("deploy"))
                .output()
                .expect("running kubectl kustomize");
            assert!(
                out.status.success(),
                "kubectl kustomize deploy/ failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).expect("kustomize output is UTF-8");
            let objects: Vec<Value> = yaml_serde::Deserializer::from_str(&text)
                .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
                .filter(|v| !v.is_null())
                .collect();
            assert!(!objects.is_empty(), "kustomize rendered nothing");
            Some(objects)
        })
        .as_deref()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn kind(o: &Value) -> &str {
    s(&o["kind"])
}

fn name(o: &Value) -> &str {
    s(&o["metadata"]["name"])
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|seq| seq.iter().map(s).collect())
        .unwrap_or_default()
}

fn objects_of<'a>(objects: &'a [Value], k: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| kind(o) == k).collect()
}

fn the_one<'a>(objects: &'a [Value], k: &str) -> &'a Value {
    let found = objects_of(objects, k);
    assert_eq!(found.len(), 1, "expected exactly one {k}");
    found[0]
}

/// The pod template of every workload object in the base.
fn pod_specs(objects: &[Value]) -> Vec<(&str, &Value)> {
    objects
        .iter()
        .filter(|o| {
            matches!(
                kind(o),
                "DaemonSet" | "Deployment" | "StatefulSet" | "Job" | "CronJob" | "Pod"
            )
        })
        .map(|o| {
            let spec = match kind(o) {
                "Pod" => &o["spec"],
                "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                _ => &o["spec"]["template"]["spec"],
            };
            (name(o), spec)
        })
        .collect()
}

#[test]
fn check_manifests_script_passes() {
    let venv = std::env::var("BASELINER_VENV").unwrap_or_else(|_| "/opt/baseliner-venv".into());
    let tools = ["kubernetes-validate", "checkov"]
        .iter()
        .all(|t| Path::new(&venv).join("bin").join(t).exists());
    if !ci() {
        if !have("kubectl") {
            return skip("kubectl is not installed");
        }
        if !tools {
            return skip(&format!(
                "kubernetes-validate and checkov are not in {venv} \
                 (BASELINER_TEST_PACKAGES=1 deploy/toolchain.sh installs them)"
            ));
        }
    }
    let out = Command::new(repo_root().join("deploy/check-manifests.sh"))
        .output()
        .expect("running deploy/check-manifests.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "deploy/check-manifests.sh failed:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("Failed checks: 0"),
        "checkov ran and failed nothing"
    );
}

#[test]
fn the_base_has_the_expected_objects() {
    let Some(objects) = rendered() else { return };
    let mut kinds: Vec<&str> = objects.iter().map(kind).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "DaemonSet",
            "Namespace",
            "NetworkPolicy",
            "Secret",
            "Service",
            "ServiceAccount",
        ]
    );
    let crd = the_one(objects, "CustomResourceDefinition");
    assert_eq!(name(crd), "workloadprofiles.baseliner.io");
    assert_eq!(s(&crd["spec"]["scope"]), "Namespaced");
    assert_eq!(strings(&crd["spec"]["names"]["shortNames"]), ["wp"]);
    let version = &crd["spec"]["versions"][0];
    assert_eq!(s(&version["name"]), "v1alpha1");
    assert!(version["subresources"]["status"].is_mapping());
    let parts = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["parts"];
    assert_eq!(s(&parts["x-kubernetes-list-type"]), "map");
    assert_eq!(strings(&parts["x-kubernetes-list-map-keys"]), ["node"]);
}

#[test]
fn no_container_is_privileged_and_capabilities_are_exactly_the_listed_ones() {
    let Some(objects) = rendered() else { return };
    let pods = pod_specs(objects);
    assert!(!pods.is_empty(), "the base runs the agent");
    let wanted: BTreeSet<&str> = CAPABILITIES.iter().copied().collect();
    for (owner, pod) in pods {
        assert_ne!(
            pod["hostNetwork"].as_bool(),
            Some(true),
            "{owner}: hostNetwork"
        );
        assert_ne!(pod["hostIPC"].as_bool(), Some(true), "{owner}: hostIPC");
        let containers: Vec<&Value> = ["initContainers", "containers"]
            .iter()
            .filter_map(|k| pod[*k].as_sequence())
            .flatten()
            .collect();
        assert!(!containers.is_empty(), "{owner} has containers");
        for c in containers {
            let at = format!("{owner}/{}", s(&c["name"]));
            let sc = &c["securityContext"];
            assert!(sc.is_mapping(), "{at}: no securityContext");
            assert_eq!(sc["privileged"].as_bool(), Some(false), "{at}: privileged");
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{at}: allowPrivilegeEscalation"
            );
            assert_eq!(
                sc["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{at}: readOnlyRootFilesystem"
            );
            assert_eq!(
                s(&sc["seccompProfile"]["type"]),
                "RuntimeDefault",
                "{at}: seccomp"
            );
            assert_eq!(
                strings(&sc["capabilities"]["drop"]),
                ["ALL"],
                "{at}: drops ALL"
            );
            let add = strings(&sc["capabilities"]["add"]);
            let added: BTreeSet<&str> = add.iter().copied().collect();
            assert_eq!(add.len(), added.len(), "{at}: a capability added twice");
            assert_eq!(added, wanted, "{at}: added capabilities");
        }
    }
}

#[test]
fn every_namespaced_object_is_in_the_baseliner_namespace() {
    let Some(objects) = rendered() else { return };
    for o in objects {
        let ns = &o["metadata"]["namespace"];
        if CLUSTER_SCOPED.contains(&kind(o)) {
            assert!(ns.is_null(), "{} {} is cluster-scoped", kind(o), name(o));
        } else {
            assert_eq!(s(ns), NAMESPACE, "{} {}", kind(o), name(o));
        }
    }
    let ns = the_one(objects, "Namespace");
    assert_eq!(name(ns), NAMESPACE);
    for binding in objects_of(objects, "ClusterRoleBinding") {
        for subject in binding["subjects"].as_sequence().expect("subjects") {
            assert_eq!(s(&subject["kind"]), "ServiceAccount");
            assert_eq!(s(&subject["namespace"]), NAMESPACE);
            assert_eq!(s(&subject["name"]), "baseliner");
        }
    }
}

#[test]
fn rbac_grants_only_what_the_agent_uses_and_no_wildcard() {
    let Some(objects) = rendered() else { return };
    // (API group, resource) -> verbs: everything the agent may do, and it needs all of it.
    let allowed: BTreeMap<(&str, &str), BTreeSet<&str>> = [
        (
            ("", "pods"),
            &["get", "list", "watch", "patch", "delete"][..],
        ),
        (("", "namespaces"), &["get", "list", "watch"][..]),
        (("", "events"), &["create"][..]),
        (("events.k8s.io", "events"), &["create"][..]),
        (
            ("baseliner.io", "workloadprofiles"),
            &["get", "list", "watch", "create", "patch"][..],
        ),
        (("baseliner.io", "workloadprofiles/status"), &["patch"][..]),
        (
            ("networking.k8s.io", "networkpolicies"),
            &["get", "list", "watch", "create", "patch"][..],
        ),
    ]
    .into_iter()
    .map(|(k, verbs)| (k, verbs.iter().copied().collect()))
    .collect();
    assert!(
        objects_of(objects, "Role").is_empty() && objects_of(objects, "RoleBinding").is_empty(),
        "the base grants through its one ClusterRole"
    );
    let role = the_one(objects, "ClusterRole");
    assert!(
        role["aggregationRule"].is_null(),
        "no aggregation: the rules are all there is"
    );
    let mut granted: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for rule in role["rules"].as_sequence().expect("rules") {
        for field in [
            "apiGroups",
            "resources",
            "verbs",
            "resourceNames",
            "nonResourceURLs",
        ] {
            for v in strings(&rule[field]) {
                assert!(!v.contains('*'), "wildcard {v:?} in {field} of {rule:?}");
            }
        }
        assert!(
            rule["nonResourceURLs"].is_null(),
            "non-resource URLs granted"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                let verbs = strings(&rule["verbs"]);
                let ok = &allowed
                    .get(&(group, resource))
                    .unwrap_or_else(|| panic!("{group:?}/{resource} is granted"));
                for verb in verbs {
                    assert!(
                        ok.contains(verb),
                        "{verb} on {group:?}/{resource} is wider than the agent needs"
                    );
                    granted.entry((group, resource)).or_default().insert(verb);
                }
            }
        }
    }
    assert_eq!(granted, allowed, "every listed permission is granted");
    let binding = the_one(objects, "ClusterRoleBinding");
    assert_eq!(s(&binding["roleRef"]["kind"]), "ClusterRole");
    assert_eq!(s(&binding["roleRef"]["name"]), name(role));
}

#[test]
fn the_daemonset_runs_the_agent_as_specified() {
    let Some(objects) = rendered() else { return };
    let ds = the_one(objects, "DaemonSet");
    assert_eq!(s(&ds["spec"]["updateStrategy"]["type"]), "RollingUpdate");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(true));
    assert_eq!(s(&pod["serviceAccountName"]), "baseliner");
    assert_eq!(s(&pod["priorityClassName"]), "system-node-critical");
    let tolerations = pod["tolerations"].as_sequence().expect("tolerations");
    assert!(
        tolerations
            .iter()
            .any(|t| s(&t["operator"]) == "Exists" && t["key"].is_null() && t["effect"].is_null()),
        "tolerates every taint, so it runs on every node"
    );
    let c = &pod["containers"][0];
    let image = s(&c["image"]);
    let (_, tag) = image.rsplit_once(':').expect("the image has a tag");
    assert!(
        !tag.is_empty() && tag != "latest" && !tag.contains('/'),
        "pinned tag: {image}"
    );
    assert_eq!(s(&c["imagePullPolicy"]), "IfNotPresent");
    assert_eq!(
        strings(&c["args"]),
        [
            "run",
            "--store",
            "/var/lib/baseliner",
            "--config",
            "/etc/baseliner/config.toml"
        ]
    );
    let env = c["env"].as_sequence().expect("env");
    assert!(
        env.iter().any(|e| s(&e["name"]) == "NODE_NAME"
            && s(&e["valueFrom"]["fieldRef"]["fieldPath"]) == "spec.nodeName"),
        "NODE_NAME from the pod's node"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsUser"].as_u64(), Some(0));
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(false));
    for (class, resource, quantity) in [
        ("requests", "memory", "64Mi"),
        ("requests", "cpu", "50m"),
        ("limits", "memory", "256Mi"),
        ("limits", "cpu", "500m"),
    ] {
        let got = s(&c["resources"][class][resource]);
        assert_eq!(got, quantity, "resources.{class}.{resource}");
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(s(&get["scheme"]), "HTTPS", "{probe}");
        assert_eq!(s(&get["path"]), path, "{probe}");
        let port = &get["port"];
        assert!(port.as_u64() == Some(9443) || s(port) == "https", "{probe}");
    }
    assert!(
        c["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .any(|p| p["containerPort"].as_u64() == Some(9443) && s(&p["name"]) == "https")
    );

    // Mount path -> (volume, read-only), and each volume's host path.
    let mounts: BTreeMap<&str, (&str, bool)> = c["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            (
                s(&m["mountPath"]),
                (s(&m["name"]), m["readOnly"].as_bool() == Some(true)),
            )
        })
        .collect();
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(|v| (s(&v["name"]), v))
        .collect();
    let host = |mount: &str| -> (&str, &str, bool) {
        let (vol, ro) = mounts
            .get(mount)
            .unwrap_or_else(|| panic!("{mount} is mounted"));
        let hp = &volumes[vol]["hostPath"];
        (s(&hp["path"]), s(&hp["type"]), *ro)
    };
    assert_eq!(
        host("/sys/kernel/btf"),
        ("/sys/kernel/btf", "Directory", true)
    );
    assert_eq!(host("/sys/fs/bpf"), ("/sys/fs/bpf", "Directory", false));
    assert_eq!(
        host("/sys/fs/cgroup"),
        ("/sys/fs/cgroup", "Directory", false)
    );
    assert_eq!(
        host("/sys/kernel/tracing"),
        ("/sys/kernel/tracing", "Directory", false)
    );
    assert_eq!(host("/host/proc"), ("/proc", "Directory", true));
    assert_eq!(
        host("/var/lib/baseliner"),
        ("/var/lib/baseliner", "DirectoryOrCreate", false)
    );
    let (tmp, _) = mounts["/tmp"];
    assert!(volumes[tmp]["emptyDir"].is_mapping(), "/tmp is an emptyDir");
    for m in c["volumeMounts"].as_sequence().unwrap() {
        assert_ne!(
            s(&m["mountPropagation"]),
            "Bidirectional",
            "Bidirectional propagation needs a privileged container"
        );
    }

    // /etc/baseliner holds config.toml from the generated Secret, and the API's certificate
    // and key from the operator's TLS Secret, where the configuration says they are.
    let (config_volume, ro) = mounts["/etc/baseliner"];
    assert!(ro, "the configuration is mounted read-only");
    let mut files = BTreeMap::new();
    for source in volumes[config_volume]["projected"]["sources"]
        .as_sequence()
        .expect("a projected volume")
    {
        let secret = s(&source["secret"]["name"]);
        for item in source["secret"]["items"].as_sequence().expect("items") {
            files.insert(
                format!("/etc/baseliner/{}", s(&item["path"])),
                (secret, s(&item["key"])),
            );
        }
    }
    let (config_secret, key) = files["/etc/baseliner/config.toml"];
    assert_eq!(key, "config.toml");
    assert!(
        config_secret.starts_with("baseliner-config-"),
        "the generated Secret (name with a content hash): {config_secret}"
    );
    assert!(
        objects
            .iter()
            .any(|o| kind(o) == "Secret" && name(o) == config_secret),
        "the Secret {config_secret} is in the base"
    );
    assert_eq!(
        files["/etc/baseliner/api.crt"],
        ("baseliner-api-tls", "tls.crt")
    );
    assert_eq!(
        files["/etc/baseliner/api.key"],
        ("baseliner-api-tls", "tls.key")
    );

    let svc = the_one(objects, "Service");
    assert_eq!(s(&svc["spec"]["type"]), "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["port"].as_u64(), Some(9443));
    assert_eq!(
        svc["spec"]["selector"],
        ds["spec"]["selector"]["matchLabels"]
    );
    let ann = &svc["metadata"]["annotations"];
    assert_eq!(s(&ann["prometheus.io/scrape"]), "true");
    assert_eq!(s(&ann["prometheus.io/scheme"]), "https");
    assert_eq!(s(&ann["prometheus.io/port"]), "9443");
}

#[test]
fn every_checkov_skip_names_one_check_and_a_reason() {
    let Some(objects) = rendered() else { return };
    for o in objects {
        let Some(ann) = o["metadata"]["annotations"].as_mapping() else {
            continue;
        };
        for (k, v) in ann {
            let k = s(k);
            if !k.starts_with("checkov.io/skip") {
                continue;
            }
            let (id, reason) = s(v)
                .split_once('=')
                .unwrap_or_else(|| panic!("{k} of {}: CHECK_ID=reason", name(o)));
            assert!(
                id.starts_with("CKV_K8S_") || id.starts_with("CKV2_K8S_"),
                "{k}: one check id, not {id:?}"
            );
            assert!(
                reason.split_whitespace().count() >= 5,
                "{k} ({id}): the reason says why"
            );
        }
    }
}

#[test]
fn the_agent_accepts_the_shipped_configuration() {
    let path = repo_root().join("deploy/config.toml");
    let text = std::fs::read_to_string(&path).expect("deploy/config.toml");
    assert!(
        text.contains("[kubernetes]\nenabled = true"),
        "the DaemonSet's agent runs with [kubernetes] enabled"
    );
    let config = match learner::config::Config::parse(&text) {
        Ok(c) => c,
        // The [kubernetes] section is newer than this configuration parser: check the rest.
        Err(e) if e.contains("unknown field `kubernetes`") => {
            println!("note: this agent build has no [kubernetes] section; checking the rest");
            let without: String = text
                .split_inclusive('\n')
                .scan(false, |in_kube, line| {
                    if line.starts_with('[') {
                        *in_kube = line.trim() == "[kubernetes]";
                    }
                    Some(if *in_kube { "" } else { line })
                })
                .collect();
            learner::config::Config::parse(&without)
                .unwrap_or_else(|e| panic!("deploy/config.toml: {e}"))
        }
        Err(e) => panic!("deploy/config.toml: {e}"),
    };
    assert_eq!(config.api.listen, Some("0.0.0.0:9443".parse().unwrap()));
    assert_eq!(
        config.api.tls_cert.as_deref(),
        Some(Path::new("/etc/baseliner/api.crt"))
    );
    assert_eq!(
        config.api.tls_key.as_deref(),
        Some(Path::new("/etc/baseliner/api.key"))
    );
    assert!(
        config
            .respond
            .protected_namespaces
            .iter()
            .any(|n| n == NAMESPACE),
        "the agent never acts on its own namespace"
    );
}
