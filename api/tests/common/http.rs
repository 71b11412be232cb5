//! Driving the router in process: requests, answers, and bearer tokens of each role.

use std::sync::Arc;

use api::{
    auth::{Auth, Role, TokenConfig, token_sha256},
    error::Problem,
    workload_segment,
};
use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use super::Fake;

pub const JSON: &str = "application/json";

/// A whole answer of the router.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .map_or("", |v| v.to_str().unwrap())
    }

    /// Asserts a success with content type `ct`.
    pub fn ok(self, ct: &str) -> Answer {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        assert_eq!(self.content_type(), ct);
        self
    }

    /// Asserts an RFC 9457 problem with `status`; returns its detail.
    pub fn problem(&self, status: StatusCode) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/problem+json");
        let p: Problem = self.decode();
        assert_eq!(p.kind, "about:blank");
        assert_eq!(p.status, status.as_u16());
        assert_eq!(p.title, status.canonical_reason().unwrap());
        assert!(!p.detail.is_empty());
        p.detail
    }
}

/// A request with an optional `Authorization` header.
pub fn request(
    method: Method,
    uri: &str,
    authorization: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = authorization {
        req = req.header(header::AUTHORIZATION, a);
    }
    req.body(body.into()).unwrap()
}

/// Sends `req` and reads the whole answer.
pub async fn call(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn send(app: &Router, method: Method, uri: &str, body: impl Into<Body>) -> Answer {
    call(app, request(method, uri, None, body)).await
}

/// Sends with `Authorization: Bearer <token>`.
pub async fn send_as(
    app: &Router,
    token: &str,
    method: Method,
    uri: &str,
    body: impl Into<Body>,
) -> Answer {
    let auth = format!("Bearer {token}");
    call(app, request(method, uri, Some(&auth), body)).await
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Method::GET, uri, Body::empty()).await
}

pub async fn post(app: &Router, uri: &str, body: impl Into<Body>) -> Answer {
    send(app, Method::POST, uri, body).await
}

pub async fn put_mode(app: &Router, workload: &str, body: &str) -> Answer {
    send(
        app,
        Method::PUT,
        &profile_uri(workload, "mode"),
        body.to_string(),
    )
    .await
}

pub async fn import(app: &Router, body: impl Into<Body>) -> Answer {
    post(app, "/v1/profiles/import", body).await
}

/// The usual fake ([`Fake::new`]) and the trusted router over it.
pub fn setup() -> (Arc<Fake>, Router) {
    let fake = Arc::new(Fake::new());
    let app = super::app(&fake);
    (fake, app)
}

/// `/v1/workloads/{workload}/{rest}`.
pub fn profile_uri(workload: &str, rest: &str) -> String {
    format!("/v1/workloads/{}/{rest}", workload_segment(workload))
}

pub async fn export_text(app: &Router, workload: &str, query: &str) -> String {
    let a = get(app, &profile_uri(workload, &format!("export{query}"))).await;
    assert_eq!(a.status, StatusCode::OK);
    a.text().to_string()
}

// ---------------------------------------------------------------- tokens

/// Who holds the token of each role: vic views, rita reviews, alice administers.
pub const HOLDERS: [(Role, &str); 3] = [
    (Role::Viewer, "vic"),
    (Role::Reviewer, "rita"),
    (Role::Admin, "alice"),
];

/// The token of `role`'s holder.
pub fn token(role: Role) -> String {
    format!("bl_test_token_of_the_{role}")
}

/// The name of `role`'s holder.
pub fn holder(role: Role) -> &'static str {
    HOLDERS.iter().find(|(r, _)| *r == role).unwrap().1
}

/// The router over `fake` that wants a bearer token, one per role ([`HOLDERS`]).
pub fn secured(fake: &Arc<Fake>) -> Router {
    let tokens = HOLDERS
        .iter()
        .map(|&(role, name)| TokenConfig {
            name: name.into(),
            role,
            sha256: token_sha256(&token(role)),
        })
        .collect();
    api::app_with(fake.clone(), Auth::Tokens(Arc::new(tokens)))
}
