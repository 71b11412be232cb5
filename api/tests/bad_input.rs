//! Bad input to the routes that change something is answered with a clear 4xx and changes
//! nothing. (Mode changes and imports: see `routes.rs`; tokens and roles: see `auth.rs`.)

mod common;

use api::MAX_BODY_BYTES;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

/// The changing routes whose body is a JSON object, with a valid body.
fn decisions(s: &Seeds) -> Vec<(&'static str, Value)> {
    [
        "/v1/alerts/{key}/ack",
        "/v1/reviews/{id}/approve",
        "/v1/reviews/{id}/reject",
        "/v1/reviews/bulk",
        "/v1/workloads/{workload}/mode",
    ]
    .into_iter()
    .map(|p| (p, serde_json::from_str(&s.body(p)).unwrap()))
    .collect()
}

fn method(path: &str) -> Method {
    if path.ends_with("/mode") {
        Method::PUT
    } else {
        Method::POST
    }
}

#[tokio::test]
async fn a_malformed_body_is_400_and_changes_nothing() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let before = fake.snapshot();
    for (path, valid) in decisions(&s) {
        let text = valid.to_string();
        let mut bodies = vec![
            text[..text.len() - 1].to_string(),
            format!("{text}{text}"),
            "\"comment\"".into(),
            "[1]".into(),
            "null".into(),
            "{\"comment\": 3}".into(),
            "{'comment': 'x'}".into(),
        ];
        if path.ends_with("/mode") || path.ends_with("/bulk") {
            // Only the decisions and acknowledgements take an empty body.
            bodies.push(String::new());
        }
        for body in bodies {
            let a = send(&app, method(path), &s.uri(path), body.clone()).await;
            let detail = a.problem(StatusCode::BAD_REQUEST);
            assert!(
                detail.starts_with("request body is not valid: "),
                "{path} {body:?}: {detail}"
            );
        }
    }
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn unknown_fields_are_400_and_change_nothing() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let before = fake.snapshot();
    for (path, valid) in decisions(&s) {
        for field in ["force", "Comment", "reviewer"] {
            let mut body = valid.clone();
            body[field] = json!(true);
            let a = send(&app, method(path), &s.uri(path), body.to_string()).await;
            let detail = a.problem(StatusCode::BAD_REQUEST);
            assert!(
                detail.contains(&format!("unknown field `{field}`")),
                "{path}: {detail}"
            );
        }
    }
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn an_oversized_body_is_413_and_changes_nothing() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let before = fake.snapshot();
    for (path, valid) in decisions(&s) {
        // A valid body padded past the limit.
        let mut big = valid.to_string().into_bytes();
        big.resize(MAX_BODY_BYTES + 1, b' ');
        let detail = send(&app, method(path), &s.uri(path), big)
            .await
            .problem(StatusCode::PAYLOAD_TOO_LARGE);
        assert!(detail.contains("length limit"), "{path}: {detail}");
    }
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn an_unknown_target_is_404_and_changes_nothing() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let before = fake.snapshot();
    for (path, valid) in decisions(&s) {
        if path.ends_with("/bulk") {
            continue; // Answered per id (see reviews.rs).
        }
        let uri = path
            .replace("{key}", "no-such-alert")
            .replace("{id}", "0123456789abcdef")
            .replace("{workload}", "%2Fno%2Fsuch%2Eservice");
        let detail = send(&app, method(path), &uri, valid.to_string())
            .await
            .problem(StatusCode::NOT_FOUND);
        assert!(
            detail.contains("no") || detail.contains("unknown"),
            "{path}: {detail}"
        );
    }
    // An id that is not one segment is no route at all.
    let detail = post(&app, "/v1/reviews/a/b/approve", "")
        .await
        .problem(StatusCode::NOT_FOUND);
    assert_eq!(detail, "no route /v1/reviews/a/b/approve");
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn an_array_body_is_400_and_changes_nothing() {
    let (fake, s) = seeded();
    let app = app(&fake);
    let before = fake.snapshot();
    for (path, body) in [
        ("/v1/workloads/{workload}/mode", r#"["enforce"]"#),
        ("/v1/alerts/{key}/ack", "[]"),
        ("/v1/reviews/{id}/approve", r#"["ok"]"#),
        ("/v1/reviews/bulk", r#"["reject", ["x"]]"#),
    ] {
        let a = send(&app, method(path), &s.uri(path), body).await;
        let detail = a.problem(StatusCode::BAD_REQUEST);
        assert!(
            detail.contains("expected a JSON object"),
            "{path}: {detail}"
        );
    }
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn an_import_with_unknown_fields_is_400_and_changes_nothing() {
    let (fake, app) = setup();
    let before = fake.snapshot();
    let text = export_text(&app, NGINX, "?revision=r2").await;
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["revison"] = json!("r9");
    let detail = import(&app, v.to_string())
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("unknown field `revison`"), "{detail}");
    assert_eq!(fake.snapshot(), before);
}

#[tokio::test]
async fn a_misspelt_revision_parameter_is_400() {
    let (_fake, app) = setup();
    for rest in [
        "profile?revison=r2",
        "export?revison=r2",
        "export?fromat=yaml",
    ] {
        let detail = get(&app, &profile_uri(NGINX, rest))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains("unknown field"), "{rest}: {detail}");
    }
}
