//! `WorkloadProfile` publishing against the fake API server: each node's agent applies its own
//! part under its own field manager and the parts stay side by side; the merged status goes to
//! `/status`; reading the object back gives the merged profile and names a replica that
//! diverges from its siblings.

use baseliner_tests::fake_kube::FakeKube;
use kube::Api;
use learner::kubernetes::{
    crd::{NodePart, Threshold, WorkloadProfile, add_entry, merge, object_name},
    publish::{LocalProfile, PublishError, STATUS_MANAGER, field_manager, publish},
};
use profiles::{
    diff::DiffEntry,
    event::{Access, Family, Protocol},
    mode::Mode,
    model::{FileEntry, NetEntry, Profile, Seen},
    review::Approval,
};
use serde_json::Value;

const WL: &str = "k8s:shop/Deployment/web/nginx";
const S: u64 = 1_000_000_000;
const T0: u64 = 1_717_200_000 * S;

fn file(path: &str) -> DiffEntry {
    DiffEntry::File(FileEntry {
        path: path.into(),
        access: Access::Read,
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

fn profile(entries: impl IntoIterator<Item = DiffEntry>) -> Profile {
    let mut p = Profile::default();
    for (i, e) in entries.into_iter().enumerate() {
        add_entry(&mut p, e, Seen::at(T0 + i as u64 * S));
    }
    p
}

/// What every replica does: serve 40 pages and talk to its database.
fn common() -> Vec<DiffEntry> {
    (0..40)
        .map(|i| file(&format!("/usr/share/nginx/html/{i}.html")))
        .chain([connect("10.0.0.10", 5432)])
        .collect()
}

fn local(p: Profile, stable_since_s: u64) -> LocalProfile {
    LocalProfile {
        revision: "7d9f8c".into(),
        profile: p,
        stable_since_ns: T0 + stable_since_s * S,
        mode: Mode::Alert,
        mode_source: "namespace annotation baseliner.io/mode on shop".into(),
        threshold: Threshold::default(),
    }
}

fn approval(entry: DiffEntry) -> Approval {
    Approval {
        proposal_id: "00000000000000aa".into(),
        workload: WL.into(),
        entry: entry.clone(),
        exact: entry,
        reviewer: "alice".into(),
        at_ns: T0 + 99 * S,
        comment: "the cache warmer".into(),
    }
}

fn part_of<'a>(object: &'a Value, node: &str) -> &'a Value {
    object["spec"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node"] == node)
        .unwrap_or_else(|| panic!("no part of {node}"))
}

#[tokio::test]
async fn nodes_publish_their_parts_and_share_the_merged_status() {
    let fake = FakeKube::start();
    fake.list_map("workloadprofiles", "spec.parts", "node");
    let client = fake.client();
    let (ns, name) = object_name(WL).unwrap();
    assert_eq!(
        (ns.as_str(), name.as_str()),
        ("shop", "deployment-web-nginx")
    );

    let cache = file("/var/cache/nginx/warm");
    let a = local(profile(common()), 10);
    publish(&client, "node-a", WL, &a, &[approval(cache.clone())])
        .await
        .unwrap();
    let b = local(profile(common().into_iter().chain([file("/tmp/b")])), 20);
    let stored = publish(&client, "node-b", WL, &b, &[]).await.unwrap();

    // Both parts remain, each written under its node's field manager.
    let object = fake.object("workloadprofiles", &ns, &name).unwrap();
    let nodes: Vec<&str> = object["spec"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["node-a", "node-b"]);
    assert_eq!(object["spec"]["workload"]["ownerName"], "web");
    assert_eq!(
        part_of(&object, "node-a")["approvals"][0]["reviewer"],
        "alice"
    );
    assert_eq!(
        part_of(&object, "node-b")["entries"]
            .as_array()
            .unwrap()
            .len(),
        42
    );
    let writes = fake.writes();
    let path = format!("/apis/baseliner.io/v1alpha1/namespaces/{ns}/workloadprofiles/{name}");
    let spec_writes: Vec<_> = writes.iter().filter(|w| w.path == path).collect();
    let managers: Vec<&str> = spec_writes
        .iter()
        .map(|w| w.field_manager.as_deref().unwrap())
        .collect();
    assert_eq!(managers, [field_manager("node-a"), field_manager("node-b")]);
    for w in &spec_writes {
        assert_eq!(w.method, "PATCH");
        assert_eq!(
            w.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(w.param("force"), None, "a node's part needs no force");
        let parts = w.body.as_ref().unwrap()["spec"]["parts"]
            .as_array()
            .unwrap();
        assert_eq!(parts.len(), 1, "only the node's own part is applied");
        assert_eq!(
            parts[0]["node"].as_str(),
            w.field_manager
                .as_deref()
                .unwrap()
                .strip_prefix("baseliner/")
        );
        assert!(w.body.as_ref().unwrap().get("status").is_none());
    }
    // The status went to /status under the shared manager, with force.
    let status_writes: Vec<_> = writes
        .iter()
        .filter(|w| w.path == format!("{path}/status"))
        .collect();
    assert_eq!(status_writes.len(), 2);
    for w in &status_writes {
        assert_eq!(w.field_manager.as_deref(), Some(STATUS_MANAGER));
        assert_eq!(w.param("force"), Some("true"));
        assert!(w.body.as_ref().unwrap().get("spec").is_none());
        assert_eq!(w.status, 200);
    }

    // Read back: the merged profile, its hash in the status.
    let (parts, rejected) = stored.parts();
    assert!(rejected.is_empty(), "{rejected:?}");
    let merged = merge::merge(&parts);
    let mut want = profile(common());
    want.merge(&profile(common().into_iter().chain([file("/tmp/b")])));
    approval(cache.clone()).apply(&mut want);
    assert_eq!(merged, want);
    let status = stored.status.as_ref().unwrap();
    assert_eq!(status.entries, 43);
    assert_eq!(status.mode, "alert");
    assert_eq!(
        status.mode_source,
        "namespace annotation baseliner.io/mode on shop"
    );
    assert_eq!(status.content_hash, merge::content_hash(WL, &parts));
    assert_eq!(status.content_hash.len(), 64);
    assert_eq!(status.stable_since.as_deref(), Some("2024-06-01T00:00:20Z"));
    assert_eq!((status.nodes, status.approvals), (2, 1));
    assert!(status.divergent.is_empty(), "{:?}", status.divergent);
    assert_eq!(
        object["status"]["contentHash"],
        status.content_hash.as_str()
    );

    // Re-publishing node-a replaces its part only.
    let b_before = part_of(&object, "node-b").clone();
    let a2 = local(profile(common().into_iter().chain([file("/tmp/a2")])), 30);
    publish(&client, "node-a", WL, &a2, &[]).await.unwrap();
    let object = fake.object("workloadprofiles", &ns, &name).unwrap();
    assert_eq!(object["spec"]["parts"].as_array().unwrap().len(), 2);
    assert_eq!(part_of(&object, "node-b"), &b_before);
    let a_part = part_of(&object, "node-a");
    assert!(a_part.get("approvals").is_none(), "withdrawn approvals go");
    assert!(
        a_part["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/tmp/a2")
    );
    assert_eq!(object["status"]["entries"], 43);
    assert_eq!(object["status"]["stableSince"], "2024-06-01T00:00:30Z");

    // A third replica with many entries no sibling has is named, with why and examples.
    let odd: Vec<DiffEntry> = (0..25)
        .map(|i| connect(&format!("198.51.100.{i}"), 3333))
        .collect();
    let c = local(profile(common().into_iter().chain(odd)), 40);
    publish(&client, "node-c", WL, &c, &[]).await.unwrap();
    let api: Api<WorkloadProfile> = Api::namespaced(client.clone(), &ns);
    let read = api.get(&name).await.unwrap();
    let status = read.status.as_ref().unwrap();
    assert_eq!(status.divergent.len(), 1, "{:?}", status.divergent);
    let d = &status.divergent[0];
    assert_eq!((d.node.as_str(), d.unique, d.entries), ("node-c", 25, 66));
    assert!(d.reason.contains("saw no test traffic"), "{}", d.reason);
    assert!(
        d.reason.contains("compromised while learning"),
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains("connect tcp 198.51.100.0:3333"),
        "{}",
        d.reason
    );
    assert_eq!(status.entries, 41 + 2 + 25);

    // Node a's agent merges the others' parts into the profile it scores with.
    let (others, bad) = read.other_parts("node-a");
    assert!(bad.is_empty());
    let nodes: Vec<&str> = others.iter().map(|p: &NodePart| p.node.as_str()).collect();
    assert_eq!(nodes, ["node-b", "node-c"]);
    let mut scoring = a2.profile.clone();
    scoring.merge(&merge::merge(&others));
    assert_eq!(scoring.len(), status.entries as usize);
}

#[tokio::test]
async fn only_kubernetes_workloads_publish_and_names_never_mix_workloads() {
    let fake = FakeKube::start();
    fake.list_map("workloadprofiles", "spec.parts", "node");
    let client = fake.client();
    let p = local(profile(common()), 0);
    let host = publish(&client, "node-a", "/system.slice/app.service", &p, &[]).await;
    assert!(
        matches!(host, Err(PublishError::NotKubernetes(_))),
        "{host:?}"
    );
    assert!(fake.writes().is_empty());

    // `web` / `nginx-x` and `web-nginx` / `x` would share a name.
    let first = "k8s:shop/Deployment/web/nginx-x";
    let second = "k8s:shop/Deployment/web-nginx/x";
    assert_eq!(object_name(first), object_name(second));
    publish(&client, "node-a", first, &p, &[]).await.unwrap();
    let err = publish(&client, "node-b", second, &p, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Collision { .. }), "{err:?}");
    assert!(err.to_string().contains(first), "{err}");
    let (ns, name) = object_name(first).unwrap();
    let object = fake.object("workloadprofiles", &ns, &name).unwrap();
    assert_eq!(object["spec"]["parts"].as_array().unwrap().len(), 1);
    assert_eq!(object["spec"]["workload"]["ownerName"], "web");
}
