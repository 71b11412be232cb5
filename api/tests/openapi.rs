//! The OpenAPI document describes exactly the routes the router serves, with the role each
//! needs.

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::*;
use serde_json::Value;

/// Every route the router serves, with the least role it needs (`None`: anyone).
const ROUTES: [(&str, &str, Option<&str>); 30] = [
    ("get", "/healthz", None),
    ("get", "/readyz", None),
    ("get", "/v1/openapi.json", None),
    ("get", "/metrics", Some("viewer")),
    ("get", "/v1/status", Some("viewer")),
    ("get", "/v1/alerts", Some("viewer")),
    ("get", "/v1/alerts/stream", Some("viewer")),
    ("post", "/v1/alerts/{key}/ack", Some("reviewer")),
    ("get", "/v1/audit", Some("viewer")),
    ("get", "/v1/reports/audit", Some("viewer")),
    ("get", "/v1/reports/pci", Some("viewer")),
    ("get", "/v1/events", Some("viewer")),
    ("get", "/v1/workloads/{workload}/netpol", Some("viewer")),
    ("get", "/v1/netpol/check", Some("viewer")),
    ("get", "/v1/modes", Some("viewer")),
    ("get", "/v1/workloads", Some("viewer")),
    ("get", "/v1/workloads/{workload}", Some("viewer")),
    ("get", "/v1/workloads/{workload}/modes", Some("viewer")),
    ("put", "/v1/workloads/{workload}/mode", Some("admin")),
    ("get", "/v1/workloads/{workload}/profile", Some("viewer")),
    ("get", "/v1/workloads/{workload}/export", Some("viewer")),
    ("get", "/v1/workloads/{workload}/diff", Some("viewer")),
    ("get", "/v1/profiles", Some("viewer")),
    ("post", "/v1/profiles/import", Some("admin")),
    ("get", "/v1/reviews", Some("viewer")),
    ("get", "/v1/reviews/{id}", Some("viewer")),
    ("post", "/v1/reviews/{id}/approve", Some("reviewer")),
    ("post", "/v1/reviews/{id}/reject", Some("reviewer")),
    ("post", "/v1/reviews/bulk", Some("reviewer")),
    ("get", "/v1/approvals", Some("viewer")),
];

#[test]
fn the_document_lists_exactly_the_served_routes_with_their_roles() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let got: BTreeSet<(String, String, Option<String>)> = operations(&doc)
        .into_iter()
        .map(|o| (o.method, o.path, o.role))
        .collect();
    let want: BTreeSet<(String, String, Option<String>)> = ROUTES
        .iter()
        .map(|(m, p, r)| (m.to_string(), p.to_string(), r.map(str::to_string)))
        .collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing from the document: {missing:?}\nnot expected: {extra:?}"
    );
    assert_eq!(got.len(), ROUTES.len(), "no route is listed twice");
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&Value::from("http"), &Value::from("bearer"))
    );
}

#[test]
fn every_path_parameter_is_described() {
    for o in operations(&doc()) {
        let declared: BTreeSet<&str> = o.op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let in_template: BTreeSet<&str> = o
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_template, "{} {}", o.method, o.path);
        assert!(
            o.op["responses"].get("200").is_some(),
            "{} {}: no 200 response",
            o.method,
            o.path
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    for o in operations(&doc()) {
        // A fresh agent each, so that no call decides what another one needs.
        let (fake, seeds) = seeded();
        let app = app(&fake);
        let (method, uri) = (o.http_method(), seeds.call_uri(&o));
        let a = send(&app, method.clone(), &uri, seeds.body(&o.path)).await;
        assert_ne!(
            a.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {}",
            a.text()
        );
        if a.status == StatusCode::NOT_FOUND {
            let detail = a.problem(StatusCode::NOT_FOUND);
            assert!(!detail.starts_with("no route"), "{method} {uri}: {detail}");
        }
        // With seeded targets and valid bodies, every call succeeds but those needing what the
        // fake lacks.
        let lacking = [
            ("/v1/alerts/stream", StatusCode::SERVICE_UNAVAILABLE), // no running agent
            ("/v1/events", StatusCode::SERVICE_UNAVAILABLE),        // no evidence store
            ("/v1/reports/pci", StatusCode::CONFLICT),              // no cardholder-data paths
            // Not on Kubernetes.
            (
                "/v1/workloads/{workload}/netpol",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            ("/v1/netpol/check", StatusCode::SERVICE_UNAVAILABLE),
        ];
        match lacking.iter().find(|(p, _)| *p == o.path) {
            Some((_, status)) => drop(a.problem(*status)),
            None => assert_eq!(a.status, StatusCode::OK, "{method} {uri}: {}", a.text()),
        }
    }
    // The check can fail: a route the router lacks gets the fallback's answer.
    let (_fake, app) = setup();
    let detail = get(&app, "/v1/reviews/0123456789abcdef/history")
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(detail.starts_with("no route"), "{detail}");
}

fn path_names(doc: &Value) -> BTreeSet<String> {
    doc["paths"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let fake = std::sync::Arc::new(Fake::new());
    let a = get(&secured(&fake), "/v1/openapi.json").await.ok(JSON);
    let served = a.json();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["info"]["title"], "Baseliner API");
    assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(served["components"], doc()["components"]);
    // Every route of `api::openapi()` but the document's own is served as built.
    for path in path_names(&served) {
        assert_eq!(served["paths"][&path], doc()["paths"][&path], "{path}");
    }
}

#[tokio::test]
async fn the_served_document_is_the_one_built() {
    let fake = std::sync::Arc::new(Fake::new());
    let served = get(&secured(&fake), "/v1/openapi.json")
        .await
        .ok(JSON)
        .json();
    assert_eq!(path_names(&served), path_names(&doc()));
    assert_eq!(served, doc());
}

#[test]
fn operation_ids_are_unique() {
    let mut seen = std::collections::BTreeMap::new();
    for o in operations(&doc()) {
        let id = o.op["operationId"].as_str().unwrap_or_default().to_string();
        assert!(!id.is_empty(), "{} {} has no operationId", o.method, o.path);
        if let Some(first) = seen.insert(id.clone(), format!("{} {}", o.method, o.path)) {
            panic!(
                "operationId {id:?} of {} {} is also {first}'s",
                o.method, o.path
            );
        }
    }
}
