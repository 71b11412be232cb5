use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use profiles::{
    event::{Access, Family, Protocol},
    mode::Mode,
    model::{ExecEntry, FileEntry, LineageEntry, NetEntry},
};
use serde_json::json;

use super::{merge::*, *};

const WL: &str = "k8s:shop/Deployment/web/nginx";
const S: u64 = 1_000_000_000;
/// 2024-06-01T00:00:00Z.
const T0: u64 = 1_717_200_000 * S;

fn file(path: &str) -> DiffEntry {
    DiffEntry::File(FileEntry {
        path: path.into(),
        access: Access::Read,
    })
}

fn exec(path: &str, args: Option<&[&str]>) -> DiffEntry {
    DiffEntry::Exec(ExecEntry {
        path: path.into(),
        args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
    })
}

fn connect(addr: &str, port: u16) -> DiffEntry {
    DiffEntry::Connect(NetEntry {
        family: Family::Inet,
        protocol: Protocol::Tcp,
        addr: addr.into(),
        port,
    })
}

fn seen(i: u64) -> Seen {
    Seen {
        count: 1 + i % 7,
        first_ns: T0 + i * S,
        last_ns: T0 + i * S + 123_456_789,
    }
}

fn profile(entries: impl IntoIterator<Item = DiffEntry>) -> Profile {
    let mut p = Profile::default();
    for (i, e) in entries.into_iter().enumerate() {
        add_entry(&mut p, e, seen(i as u64));
    }
    p
}

/// Entries every replica of the fixture workload has.
fn common() -> Vec<DiffEntry> {
    vec![
        exec("/usr/sbin/nginx", Some(&["-g", "daemon off;"])),
        exec("/docker-entrypoint.sh", None),
        DiffEntry::Lineage(LineageEntry {
            parent: "/docker-entrypoint.sh".into(),
            child: "/usr/sbin/nginx".into(),
        }),
        file("/etc/nginx/nginx.conf"),
        file("/etc/passwd"),
        connect("10.0.0.10", 5432),
        DiffEntry::Listen(NetEntry {
            family: Family::Inet6,
            protocol: Protocol::Tcp,
            addr: "::".into(),
            port: 80,
        }),
    ]
}

fn approval(reviewer: &str, entry: DiffEntry, at_ns: u64) -> Approval {
    Approval {
        proposal_id: format!("{at_ns:016x}"),
        workload: WL.into(),
        entry: entry.clone(),
        exact: entry,
        reviewer: reviewer.into(),
        at_ns,
        comment: format!("checked by {reviewer}"),
    }
}

fn part(node: &str, p: &Profile, approvals: &[Approval]) -> NodePart {
    ProfilePart::new(
        node,
        WL,
        "7d9f8c",
        p,
        approvals,
        T0 + 3600 * S,
        T0 + 7200 * S,
    )
    .to_node_part(WL)
    .unwrap()
}

fn crd() -> CustomResourceDefinition {
    WorkloadProfile::crd()
}

fn schema() -> Value {
    let version = &crd().spec.versions[0];
    serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap()
}

#[test]
fn parts_are_a_list_map_keyed_by_node() {
    let s = schema();
    let parts = &s["properties"]["spec"]["properties"]["parts"];
    assert_eq!(parts["x-kubernetes-list-type"], "map");
    assert_eq!(parts["x-kubernetes-list-map-keys"], json!(["node"]));
    // A list-map key must be required; entries stay an atomic list (one owner: the node).
    assert_eq!(parts["items"]["required"], json!(["node"]));
    let entries = &parts["items"]["properties"]["entries"];
    assert_eq!(entries["type"], "array");
    assert!(entries.get("x-kubernetes-list-type").is_none());
    let entry = &entries["items"];
    assert_eq!(
        entry["required"],
        json!(["count", "first_ns", "kind", "last_ns"])
    );
    assert_eq!(entry["properties"]["args"]["nullable"], true);
    assert_eq!(s["required"], json!(["spec"]));
    let status = &s["properties"]["status"]["properties"];
    for field in [
        "mode",
        "modeSource",
        "entries",
        "stableSince",
        "contentHash",
        "divergent",
    ] {
        assert!(status.get(field).is_some(), "status.{field}");
    }
    assert_eq!(status["stableSince"]["format"], "date-time");
    let c = crd();
    assert_eq!(
        c.metadata.name.as_deref(),
        Some("workloadprofiles.baseliner.io")
    );
    assert_eq!(c.spec.scope, "Namespaced");
    assert_eq!(c.spec.names.short_names, Some(vec!["wp".to_string()]));
    let version = &c.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().unwrap().status.is_some());
}

#[test]
fn printer_columns_show_mode_entries_stable_since_and_hash() {
    let version = &crd().spec.versions[0];
    let columns: Vec<(&str, &str, &str)> = version
        .additional_printer_columns
        .as_deref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Mode", "string", ".status.mode"),
            ("Entries", "integer", ".status.entries"),
            ("Stable-Since", "date", ".status.stableSince"),
            ("Hash", "string", ".status.contentHash"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ]
    );
}

fn deploy_crd() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crd.yaml")
}

/// `BASELINER_WRITE_CRD=1 cargo test -p learner deploy_crd` rewrites the file.
#[test]
fn deploy_crd_yaml_is_generated_from_the_type() {
    let want = crd_yaml();
    if std::env::var_os("BASELINER_WRITE_CRD").is_some() {
        std::fs::write(deploy_crd(), &want).unwrap();
    }
    let have = std::fs::read_to_string(deploy_crd()).unwrap();
    assert!(
        have == want,
        "deploy/crd.yaml is not what `{CRD_COMMAND}` prints: regenerate it (or run this test \
         with BASELINER_WRITE_CRD=1)"
    );
    assert!(want.starts_with("# Generated from the WorkloadProfile type"));
    assert!(want.contains(CRD_COMMAND));
    let parsed: CustomResourceDefinition = yaml_serde::from_str(&want).unwrap();
    assert_eq!(parsed, crd());
}

#[test]
fn object_names_are_dns_1123_and_deterministic() {
    let name = |id: &str| object_name(id).unwrap();
    assert_eq!(
        name("k8s:shop/Deployment/web/nginx"),
        ("shop".into(), "deployment-web-nginx".into())
    );
    assert_eq!(
        name("k8s:ops/CronJob/backup.nightly/dump").1,
        "cronjob-backup.nightly-dump"
    );
    assert_eq!(object_name("/system.slice/app.service"), None);
    let valid = |n: &str| {
        n.len() <= MAX_NAME
            && n.split('.').all(|label| {
                let b = label.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            })
    };
    let long = format!("k8s:shop/StatefulSet/{}/main", "db-".repeat(40));
    let cases = [
        ("k8s:shop/Pod/Web_1/Main", "pod-web-1-main-"),
        (
            long.as_str(),
            "statefulset-db-db-db-db-db-db-db-db-db-db-db-db-db-d",
        ),
        ("k8s:shop/Pod/a..b/c.", "pod-a--b-c-"),
        ("k8s:shop/Pod/-/_", "pod-"),
    ];
    for (id, prefix) in cases {
        let (_, n) = name(id);
        assert!(valid(&n), "{id}: {n}");
        assert!(n.starts_with(prefix), "{id}: {n}");
        let hash = &n[n.len() - 8..];
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{n}");
        assert_eq!(name(id).1, n, "deterministic");
    }
    // Names that sanitise alike stay apart.
    assert_ne!(
        name("k8s:shop/Pod/Web/main").1,
        name("k8s:shop/Pod/wEb/main").1
    );
    assert_ne!(name("k8s:shop/Pod/Web/main").1, "pod-web-main");
}

#[test]
fn a_part_round_trips_to_its_profile_and_approvals() {
    let p = profile(common());
    let approvals = vec![
        approval("bob", file("/tmp/cache"), T0 + 20 * S + 5),
        approval("alice", exec("/bin/date", Some(&[])), T0 + 10 * S),
        Approval {
            workload: "k8s:shop/Deployment/other/x".into(),
            ..approval("eve", file("/etc/shadow"), T0)
        },
    ];
    let wire = ProfilePart::new("node-a", WL, "7d9f8c", &p, &approvals, T0, T0 + S);
    assert_eq!(wire.entries.len(), p.len());
    assert_eq!(
        wire.approvals.len(),
        2,
        "another workload's approval stays out"
    );
    assert_eq!(wire.approvals[0].reviewer, "alice", "time order");
    assert_eq!(
        wire.approvals[1].approved_at,
        "2024-06-01T00:00:20.000000005Z"
    );
    // Through JSON, as the API server stores it.
    let text = serde_json::to_string(&wire).unwrap();
    let back: ProfilePart = serde_json::from_str(&text).unwrap();
    assert_eq!(back, wire);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["entries"][1],
        json!({"kind": "exec", "path": "/usr/sbin/nginx",
        "args": ["-g", "daemon off;"], "count": 1, "first_ns": T0,
        "last_ns": T0 + 123_456_789})
    );
    assert_eq!(v["entries"][0]["args"], Value::Null);
    let decoded = back.to_node_part(WL).unwrap();
    assert_eq!(decoded.profile, p);
    assert_eq!(
        decoded.approvals,
        vec![approvals[1].clone(), approvals[0].clone()]
    );
    assert_eq!(
        (decoded.node.as_str(), decoded.revision.as_str()),
        ("node-a", "7d9f8c")
    );
    assert_eq!((decoded.stable_since_ns, decoded.updated_ns), (T0, T0 + S));
    // A null `args` pruned by the API server still reads as unknown arguments.
    let mut pruned = v.clone();
    pruned["entries"][0].as_object_mut().unwrap().remove("args");
    let pruned: ProfilePart = serde_json::from_value(pruned).unwrap();
    assert_eq!(pruned.to_node_part(WL).unwrap().profile, p);
    // The approved entries join the merged profile, marked by the approvals.
    let merged = merge(&[decoded]);
    assert_eq!(merged.len(), p.len() + 2);
    assert!(merged.files.contains_key(&FileEntry {
        path: "/tmp/cache".into(),
        access: Access::Read
    }));
}

#[test]
fn an_edited_or_invalid_part_is_rejected() {
    let p = profile(common());
    let wire = ProfilePart::new("node-b", WL, "r", &p, &[], T0, T0);
    let mut edited = wire.clone();
    edited.entries[3].seen.count += 1;
    let e = edited.to_node_part(WL).unwrap_err();
    assert_eq!(e.node(), "node-b");
    assert!(e.to_string().contains("content hash mismatch"), "{e}");
    // Read as another workload's part, the hash does not match either.
    assert!(wire.to_node_part("k8s:shop/Deployment/api/nginx").is_err());
    let mut bad_time = ProfilePart::new(
        "node-c",
        WL,
        "r",
        &p,
        &[approval("a", file("/x"), T0)],
        0,
        0,
    );
    bad_time.approvals[0].approved_at = "yesterday".into();
    let e = bad_time.to_node_part(WL).unwrap_err();
    assert!(matches!(e, PartError::Time { .. }), "{e}");
    // A rehashed part with an impossible entry fails the import checks.
    let mut zero = p.clone();
    zero.files.values_mut().for_each(|s| s.count = 0);
    let e = ProfilePart::new("node-d", WL, "r", &zero, &[], 0, 0)
        .to_node_part(WL)
        .unwrap_err();
    assert!(e.to_string().contains("seen count is 0"), "{e}");
    // The object reports which parts it left out, and others' parts exclude the caller's.
    let wp = WorkloadProfile::new(
        "deployment-web-nginx",
        WorkloadProfileSpec {
            workload: WorkloadRef::from_id(WL).unwrap(),
            parts: vec![
                wire.clone(),
                edited,
                ProfilePart {
                    node: "node-a".into(),
                    ..wire
                },
            ],
        },
    );
    let (good, bad) = wp.parts();
    let nodes: Vec<&str> = good.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes, ["node-a", "node-b"]);
    assert_eq!(bad.len(), 1);
    let (others, bad) = wp.other_parts("node-b");
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].node, "node-a");
    assert!(bad.is_empty(), "the caller's own part is its own business");
}

#[test]
fn merging_parts_in_any_order_gives_the_same_profile_and_hash() {
    let a = part(
        "node-a",
        &profile(common().into_iter().chain([file("/var/cache/a")])),
        &[approval("alice", file("/opt/x"), T0 + 5)],
    );
    let b = part(
        "node-b",
        &profile(
            common()
                .into_iter()
                .rev()
                .chain([connect("10.0.0.11", 443)]),
        ),
        &[approval("bob", file("/opt/y"), T0 + 1)],
    );
    let c = part("node-c", &profile(common().into_iter().skip(2)), &[]);
    let orders = [
        [&a, &b, &c],
        [&a, &c, &b],
        [&b, &a, &c],
        [&b, &c, &a],
        [&c, &a, &b],
        [&c, &b, &a],
    ];
    let first = merge(&[a.clone(), b.clone(), c.clone()]);
    let hash = content_hash(WL, &[a.clone(), b.clone(), c.clone()]);
    for order in orders {
        let parts: Vec<NodePart> = order.into_iter().cloned().collect();
        assert_eq!(merge(&parts), first);
        assert_eq!(content_hash(WL, &parts), hash);
        let s = status(
            WL,
            &parts,
            vec![],
            Mode::Alert,
            "default",
            Threshold::default(),
        );
        assert_eq!(s.content_hash, hash);
        assert_eq!(s.entries, first.len() as u64);
    }
    assert_eq!(first.len(), common().len() + 2 + 2);
    // Counts add up and times widen across parts.
    let nginx = &first.execs[&ExecEntry {
        path: "/usr/sbin/nginx".into(),
        args: Some(vec!["-g".into(), "daemon off;".into()]),
    }];
    assert_eq!(nginx.count, 2 + 6);
    let s = status(
        WL,
        &[a, b, c],
        vec![],
        Mode::Enforce,
        "pod annotation",
        Threshold::default(),
    );
    assert_eq!((s.mode.as_str(), s.nodes, s.approvals), ("enforce", 3, 2));
    assert_eq!(s.stable_since.as_deref(), Some("2024-06-01T01:00:00Z"));
    assert!(s.divergent.is_empty());
    assert_ne!(hash, content_hash(WL, &[]));
}

#[test]
fn divergence_needs_many_unique_entries_that_are_a_large_share() {
    let base: Vec<DiffEntry> = (0..60)
        .map(|i| file(&format!("/srv/app/{i}.html")))
        .collect();
    let with = |extra: Vec<DiffEntry>| profile(base.iter().cloned().chain(extra));
    let extra = |n: usize| -> Vec<DiffEntry> {
        (0..n)
            .map(|i| connect(&format!("203.0.113.{i}"), 4444))
            .collect()
    };
    let t = Threshold::default();
    let plain = part("node-a", &with(vec![]), &[]);
    // 20 unique entries out of 80: 25 % and more than 10.
    let odd = part("node-b", &with(extra(20)), &[]);
    let found = divergence(&[plain.clone(), odd.clone()], t);
    assert_eq!(found.len(), 1);
    let d = &found[0];
    assert_eq!((d.node.as_str(), d.unique, d.entries), ("node-b", 20, 80));
    assert_eq!(d.examples.len(), MAX_EXAMPLES);
    assert_eq!(d.examples[0], "connect tcp 203.0.113.0:4444");
    for words in [
        "node-b",
        "20",
        "25 %",
        "saw no test traffic",
        "compromised while learning",
        "connect tcp 203.0.113.0:4444",
    ] {
        assert!(d.reason.contains(words), "{words:?} in {}", d.reason);
    }
    // Alone, a part never diverges.
    assert!(divergence(std::slice::from_ref(&odd), t).is_empty());
    // 10 unique entries: not more than the threshold.
    assert!(divergence(&[plain.clone(), part("node-b", &with(extra(10)), &[])], t).is_empty());
    // 14 unique out of 74 (19 %): a small share.
    assert!(divergence(&[plain.clone(), part("node-b", &with(extra(14)), &[])], t).is_empty());
    // 16 out of 76 (21 %).
    assert_eq!(
        divergence(&[plain.clone(), part("node-b", &with(extra(16)), &[])], t).len(),
        1
    );
    // Entries two of three nodes share are no one's alone.
    let twin = part("node-c", &with(extra(20)), &[]);
    assert!(divergence(&[plain.clone(), odd.clone(), twin], t).is_empty());
    // Approved entries are meant for every replica.
    let approved: Vec<Approval> = extra(20)
        .into_iter()
        .enumerate()
        .map(|(i, e)| approval("alice", e, T0 + i as u64))
        .collect();
    let reviewed = part("node-a", &with(vec![]), &approved);
    assert!(divergence(&[reviewed, odd.clone()], t).is_empty());
    // A lower threshold reports smaller differences.
    let strict = Threshold {
        min_unique: 2,
        min_percent: 5,
    };
    assert_eq!(
        divergence(&[plain, part("node-b", &with(extra(5)), &[])], strict).len(),
        1
    );
    let s = status(
        WL,
        &[part("node-a", &with(vec![]), &[]), odd],
        vec![],
        Mode::Learn,
        "",
        t,
    );
    assert_eq!(s.divergent.len(), 1);
}

/// A profile at the default size bound, with long, realistic entries of every kind.
fn thousand() -> Profile {
    let entries = (0..1000u64).map(|i| match i % 5 {
        0 => exec(
            &format!("/usr/local/lib/python3.12/site-packages/app/bin/worker-{i}"),
            Some(&["--config", "/etc/app/config.yaml", "--shard", "<num>"]),
        ),
        1 => DiffEntry::Lineage(LineageEntry {
            parent: "/usr/local/bin/python3.12".into(),
            child: format!("/usr/local/lib/python3.12/site-packages/app/bin/worker-{i}"),
        }),
        2 => file(&format!(
            "/usr/local/lib/python3.12/site-packages/app/module_{i}/__init__.py"
        )),
        3 => connect(
            &format!("10.{}.{}.{}", i % 256, (i / 7) % 256, i % 200),
            5432,
        ),
        _ => DiffEntry::Listen(NetEntry {
            family: Family::Inet6,
            protocol: Protocol::Tcp,
            addr: format!("fd00:1234:5678::{i:x}"),
            port: 8000 + i as u16,
        }),
    });
    let mut p = Profile::default();
    for (i, e) in entries.enumerate() {
        add_entry(
            &mut p,
            e,
            Seen {
                count: 1_000_000 + i as u64,
                first_ns: T0 + i as u64 * 987_654_321,
                last_ns: T0 + 86_400 * S + i as u64,
            },
        );
    }
    p
}

#[test]
fn a_thousand_entry_part_stays_well_under_the_etcd_limit() {
    let p = thousand();
    assert_eq!(p.len(), 1000);
    let approvals: Vec<Approval> = (0..20)
        .map(|i| approval("alice", file(&format!("/var/lib/app/{i}")), T0 + i))
        .collect();
    let wire = ProfilePart::new(
        "ip-10-0-12-34.eu-west-1.compute.internal",
        WL,
        "7d9f8c",
        &p,
        &approvals,
        T0,
        T0,
    );
    let bytes = serde_json::to_vec(&wire).unwrap().len();
    // About 150 bytes an entry: several nodes' parts fit in one object of 1.5 MB.
    assert!(bytes < 200 * 1024, "{bytes} bytes");
    let wp = WorkloadProfile::new(
        "deployment-web-nginx",
        WorkloadProfileSpec {
            workload: WorkloadRef::from_id(WL).unwrap(),
            parts: (0..5)
                .map(|n| ProfilePart {
                    node: format!("node-{n}"),
                    ..wire.clone()
                })
                .collect(),
        },
    );
    let object = serde_json::to_vec(&wp).unwrap().len();
    assert!(object < 1024 * 1024, "5 nodes: {object} bytes");
    assert_eq!(wire.to_node_part(WL).unwrap().profile, p);
}

#[test]
fn workload_refs_round_trip_ids() {
    let w = WorkloadRef::from_id(WL).unwrap();
    assert_eq!(
        (
            w.namespace.as_str(),
            w.owner_kind.as_str(),
            w.owner_name.as_str(),
            w.container.as_str()
        ),
        ("shop", "Deployment", "web", "nginx")
    );
    assert_eq!(w.id(), WL);
    assert_eq!(WorkloadRef::from_id("/kubepods.slice/x"), None);
    assert_eq!(rfc3339(T0), "2024-06-01T00:00:00Z");
}
