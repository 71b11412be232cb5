use profiles::redact::Redactor;
use serde_json::json;

use super::*;
use crate::kubernetes::{
    identity::{PodInfo, tests::pod_json},
    pods::NamespaceInfo,
};

const WEB: &str = "k8s:shop/Deployment/web/web";

fn recorder(dir: &tempfile::TempDir) -> Recorder {
    let store = profiles::store::Store::open(dir.path()).unwrap();
    Recorder::new(store, Redactor::default(), Mode::Learn)
}

/// A pod of Deployment `web` created at `created` (seconds) with annotation `mode`.
fn web_pod(uid: &str, created: i64, mode: Option<&str>) -> PodInfo {
    let mut p = pod_json(
        "shop",
        &format!("web-abc-{uid}"),
        uid,
        Some(("ReplicaSet", "web-abc")),
        json!({ "pod-template-hash": "abc" }),
    );
    p.metadata.annotations = mode.map(|m| [(MODE_ANNOTATION.to_string(), m.to_string())].into());
    let mut info = PodInfo::from_pod(&p).unwrap();
    info.created = created;
    info
}

fn ns(mode: Option<&str>) -> NamespaceInfo {
    NamespaceInfo {
        mode: mode.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn pod_then_namespace_then_nothing() {
    let mut cache = PodCache::new();
    cache.apply_pod(web_pod("1", 10, Some("enforce")));
    cache.apply_namespace("shop", ns(Some("alert")));
    let (d, invalid) = decide(&cache);
    assert!(invalid.is_empty());
    let Decision::Mode(m, by) = &d[WEB] else {
        panic!("{d:?}")
    };
    assert_eq!(*m, Mode::Enforce);
    assert_eq!(
        by.describe(),
        "pod annotation baseliner.io/mode on shop/web-abc-1"
    );
    // Every container of the pod is a workload of its own.
    assert!(d.contains_key("k8s:shop/Deployment/web/sidecar"));
    cache.apply_pod(web_pod("1", 10, None));
    let (d, _) = decide(&cache);
    assert_eq!(
        d[WEB],
        Decision::Mode(Mode::Alert, Annotated::Namespace("shop".into()))
    );
    cache.apply_namespace("shop", ns(None));
    assert_eq!(decide(&cache).0[WEB], Decision::None);
}

#[test]
fn the_newest_replica_decides() {
    let mut cache = PodCache::new();
    cache.apply_pod(web_pod("old", 10, Some("learn")));
    cache.apply_pod(web_pod("new", 20, Some("alert")));
    let (d, _) = decide(&cache);
    assert!(
        matches!(&d[WEB], Decision::Mode(Mode::Alert, Annotated::Pod { name, .. }) if name == "web-abc-new")
    );
}

#[test]
fn invalid_values_keep_the_mode_and_are_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = recorder(&dir);
    let mut cache = PodCache::new();
    let mut modes = ModeController::new();
    cache.apply_pod(web_pod("1", 10, Some("alert")));
    let (changes, invalid) = modes.reconcile(&cache, &mut r).unwrap();
    assert_eq!(changes.len(), 3, "setup, web and sidecar: {changes:?}");
    assert!(invalid.is_empty());
    assert_eq!(r.mode(WEB).unwrap(), Mode::Alert);
    assert_eq!(
        modes.sources()[WEB],
        "pod annotation baseliner.io/mode on shop/web-abc-1"
    );

    cache.apply_pod(web_pod("1", 10, Some("Enforce!")));
    let (changes, invalid) = modes.reconcile(&cache, &mut r).unwrap();
    assert!(changes.is_empty());
    assert_eq!(r.mode(WEB).unwrap(), Mode::Alert, "the previous mode stays");
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].value, "Enforce!");
    assert!(
        invalid[0].message().contains("shop/web-abc-1"),
        "{}",
        invalid[0].message()
    );
    // Not reported twice.
    let (_, invalid) = modes.reconcile(&cache, &mut r).unwrap();
    assert!(invalid.is_empty());
    // An invalid namespace value under a valid pod value does not matter.
    cache.apply_namespace("shop", ns(Some("bogus")));
    cache.apply_pod(web_pod("1", 10, Some("enforce")));
    let (changes, invalid) = modes.reconcile(&cache, &mut r).unwrap();
    assert_eq!(changes[0].to, Mode::Enforce);
    assert!(invalid.is_empty());
}

#[test]
fn changes_are_durable_audited_and_removal_returns_to_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = recorder(&dir);
    let mut cache = PodCache::new();
    let mut modes = ModeController::new();
    cache.apply_namespace("shop", ns(Some("dry-run")));
    cache.apply_pod(web_pod("1", 10, None));
    modes.reconcile(&cache, &mut r).unwrap();
    assert_eq!(r.store().mode(WEB).unwrap(), Some(Mode::DryRun));
    let audit = crate::respond::audit::all(r.store()).unwrap();
    let rec = audit.iter().find(|a| a.workload == WEB).unwrap();
    assert_eq!(rec.actor, "kubernetes");
    assert_eq!(rec.action.action, api::SET_MODE_ACTION);
    assert!(
        rec.action
            .target
            .contains("dry-run (was learn): namespace annotation"),
        "{}",
        rec.action.target
    );
    // The annotation goes: back to the default.
    cache.apply_namespace("shop", ns(None));
    let (changes, _) = modes.reconcile(&cache, &mut r).unwrap();
    assert_eq!(changes[0].to, Mode::Learn);
    assert!(changes[0].why.contains("was removed"));
    assert!(modes.sources().is_empty());
    // A mode set through the API with no annotation is left alone.
    r.set_mode(WEB, Mode::Alert).unwrap();
    let (changes, _) = modes.reconcile(&cache, &mut r).unwrap();
    assert!(changes.is_empty());
    assert_eq!(r.mode(WEB).unwrap(), Mode::Alert);
}
