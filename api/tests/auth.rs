//! Bearer tokens and roles: every operation needs the role its OpenAPI security names, a refused
//! call changes nothing, and every change is audited under the caller's name.

mod common;

use api::{auth::Role, workload_segment};
use axum::{
    body::Body,
    http::{Method, StatusCode},
};
use common::*;
use serde_json::json;

fn role(name: &str) -> Role {
    name.parse().unwrap()
}

#[tokio::test]
async fn every_operation_needs_the_role_its_document_names() {
    let ops = operations(&doc());
    assert!(ops.iter().any(|o| o.role.as_deref() == Some("admin")));
    for o in ops {
        // A fresh agent each, so that one call's change cannot hide another's.
        let (fake, seeds) = seeded();
        let app = secured(&fake);
        let (method, uri) = (o.http_method(), seeds.call_uri(&o));
        let what = format!("{method} {uri}");
        let body = || seeds.body(&o.path);
        let Some(need) = o.role.as_deref().map(role) else {
            // Open: health probes and the document answer anyone.
            assert_eq!(method, Method::GET, "{what}");
            let a = send(&app, method, &uri, Body::empty()).await;
            assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.text());
            continue;
        };
        let before = fake.snapshot();
        let detail = send(&app, method.clone(), &uri, body())
            .await
            .problem(StatusCode::UNAUTHORIZED);
        assert!(detail.contains("bearer token"), "{what}: {detail}");
        let detail = send_as(&app, "bl_not_a_token", method.clone(), &uri, body())
            .await
            .problem(StatusCode::UNAUTHORIZED);
        assert_eq!(detail, "the bearer token is not valid", "{what}");
        for weaker in Role::ALL.into_iter().filter(|r| *r < need) {
            let detail = send_as(&app, &token(weaker), method.clone(), &uri, body())
                .await
                .problem(StatusCode::FORBIDDEN);
            assert_eq!(
                detail,
                format!(
                    "{} has the role {weaker}; this call needs {need} or above",
                    holder(weaker)
                ),
                "{what}"
            );
        }
        assert_eq!(fake.snapshot(), before, "{what}: a refused call changed");
        for enough in Role::ALL.into_iter().filter(|r| *r >= need) {
            let a = send_as(&app, &token(enough), method.clone(), &uri, body()).await;
            assert!(
                a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN,
                "{what} as {enough}: {} {}",
                a.status,
                a.text()
            );
        }
        if o.changes() {
            // The refused calls were ones that do change something when allowed.
            assert_ne!(fake.snapshot(), before, "{what}");
        }
    }
}

#[tokio::test]
async fn a_malformed_authorization_header_is_401() {
    let (fake, _seeds) = seeded();
    let app = secured(&fake);
    let before = fake.snapshot();
    let admin = token(Role::Admin);
    let uri = profile_uri(NGINX, "mode");
    for header in [
        "Basic x".to_string(),
        format!("Basic {admin}"),
        "Bearer ".to_string(),
        "Bearer    ".to_string(),
        "Bearer".to_string(),
        admin.clone(),
        format!("Bearer {admin} {admin}"),
        format!("Bearer{admin}"),
        format!("Token {admin}"),
    ] {
        for (method, uri, body) in [
            (Method::GET, "/v1/status", String::new()),
            (
                Method::PUT,
                uri.as_str(),
                json!({"mode": "alert"}).to_string(),
            ),
        ] {
            let req = request(method, uri, Some(&header), body);
            call(&app, req).await.problem(StatusCode::UNAUTHORIZED);
        }
    }
    // A header that is not visible ASCII.
    let req = axum::http::Request::builder()
        .uri("/v1/status")
        .header(
            "authorization",
            axum::http::HeaderValue::from_bytes(b"Bearer t\xf6ken").unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let detail = call(&app, req).await.problem(StatusCode::UNAUTHORIZED);
    assert!(detail.contains("not `Bearer <token>`"), "{detail}");
    assert_eq!(fake.snapshot(), before);
    // Surrounding blanks around the token itself are tolerated.
    let ok = format!("Bearer  {admin} ");
    let a = call(
        &app,
        request(Method::GET, "/v1/status", Some(&ok), Body::empty()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
}

#[tokio::test]
async fn probes_answer_whatever_the_authorization_header() {
    let (fake, _seeds) = seeded();
    let app = secured(&fake);
    for uri in ["/healthz", "/readyz", "/v1/openapi.json"] {
        for header in [None, Some("Basic x"), Some("Bearer nope")] {
            let a = call(&app, request(Method::GET, uri, header, Body::empty())).await;
            assert_eq!(a.status, StatusCode::OK, "{uri} {header:?}");
        }
    }
    // Unknown paths are no probes: without a token they say nothing about what exists.
    get(&app, "/v1/nope")
        .await
        .problem(StatusCode::UNAUTHORIZED);
    get(&app, "/healthz/extra")
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let (fake, _seeds) = seeded();
    let app = secured(&fake);
    for scheme in ["bearer", "BEARER"] {
        let header = format!("{scheme} {}", token(Role::Viewer));
        let a = call(&app, request(Method::GET, "/v1/status", Some(&header), "")).await;
        assert_eq!(a.status, StatusCode::OK, "{scheme}: {}", a.text());
    }
}

// ---------------------------------------------------------------- audit

#[tokio::test]
async fn every_change_is_audited_under_the_callers_name() {
    let (fake, seeds) = seeded();
    let app = secured(&fake);
    let alice = token(Role::Admin);
    let as_alice = |method: Method, uri: String, body: String| {
        let (app, alice) = (app.clone(), alice.clone());
        async move {
            let a = send_as(&app, &alice, method.clone(), &uri, body).await;
            assert_eq!(a.status, StatusCode::OK, "{method} {uri}: {}", a.text());
            a
        }
    };
    for path in [
        "/v1/workloads/{workload}/mode",
        "/v1/profiles/import",
        "/v1/reviews/{id}/approve",
        "/v1/alerts/{key}/ack",
    ] {
        let method = if path.ends_with("/mode") {
            Method::PUT
        } else {
            Method::POST
        };
        as_alice(method, seeds.uri(path), seeds.body(path)).await;
    }
    let uri = format!("/v1/reviews/{}/reject", seeds.net.id);
    as_alice(Method::POST, uri, json!({"comment": "no"}).to_string()).await;
    // A reviewer's decision is hers.
    let rita = token(Role::Reviewer);
    let uri = format!("/v1/reviews/{}/approve", seeds.db.id);
    let a = send_as(&app, &rita, Method::POST, &uri, "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());

    let audit: Vec<api::AuditRecord> = send_as(&app, &rita, Method::GET, "/v1/audit", "")
        .await
        .ok(JSON)
        .decode();
    let got: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|r| {
            (
                r.actor.as_str(),
                r.action.action.as_str(),
                r.workload.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("alice", "set-mode", NGINX),
            ("alice", "import", NGINX),
            ("alice", "approve", NGINX),
            ("alice", "acknowledge", NGINX),
            ("alice", "reject", NGINX),
            ("rita", "approve", DB),
        ]
    );
    assert!(
        audit
            .iter()
            .all(|r| r.action.at_ns == NOW && r.action.outcome == "done")
    );
    assert_eq!(audit[0].action.target, "enforce (was default)");
    assert!(
        audit[1]
            .action
            .target
            .starts_with("revision r3 (6 entries, sha256 ")
    );
    assert_eq!(
        audit[2].action.target,
        format!("{}: fine", seeds.tool.entry)
    );
    assert_eq!(audit[3].alert_key, seeds.alert);
    assert_eq!(audit[4].action.target, format!("{}: no", seeds.net.entry));

    // The mode history names her too.
    let uri = profile_uri(NGINX, "modes");
    let history = send_as(&app, &rita, Method::GET, &uri, "")
        .await
        .ok(JSON)
        .json();
    assert_eq!(
        history,
        json!([{"at_ns": NOW, "by": "alice", "change": "enforce (was default)"}])
    );
    // So do the decisions and the acknowledgement themselves.
    let tool = profiles::review::get(fake.store(), &seeds.tool.id).unwrap();
    assert_eq!(tool.decision.unwrap().reviewer, "alice");
    let alerts = fake.alerts.lock().unwrap().clone();
    assert_eq!(alerts[0].ack.as_ref().unwrap().by, "alice");
}

#[tokio::test]
async fn changes_over_the_trusted_router_are_roots() {
    let (fake, _seeds) = seeded();
    let app = app(&fake);
    put_mode(&app, CRON, r#"{"mode": "alert"}"#).await.ok(JSON);
    let uri = format!("/v1/workloads/{}/modes", workload_segment(CRON));
    let history = get(&app, &uri).await.ok(JSON).json();
    assert_eq!(history[0]["by"], "root");
    assert_eq!(fake.audit.lock().unwrap()[0].actor, "root");
}
