//! Baseliner's HTTP API. [`app`] builds the axum router over any [`Agent`]: the running agent
//! serves it on a root-only unix socket ([`serve`]), and with no agent running the CLI calls the
//! same router in process over the store ([`client`]), so both paths answer alike.
//!
//! Routes (all JSON; errors are `application/problem+json`):
//! - `GET /v1/status` — the agent, its settings, every workload
//! - `GET /v1/workloads`, `GET /v1/workloads/{workload}` — mode and learning progress
//! - `GET /v1/modes`, `PUT /v1/workloads/{workload}/mode` `{"mode": "alert"}`
//! - `GET /v1/profiles`, `GET /v1/workloads/{workload}/profile[?revision=]`
//! - `GET /v1/workloads/{workload}/export[?revision=&format=json|yaml]`
//! - `POST /v1/profiles/import` (an export, JSON or YAML)
//!
//! Workload ids are cgroup paths; in a URL they are one percent-encoded segment
//! ([`workload_segment`]).

pub mod auth;
pub mod cache;
pub mod client;
pub mod error;
pub mod report;
mod routes;
pub mod serve;
pub mod state;
pub mod summary;

use std::sync::Arc;

use axum::Router;

pub use axum::http::StatusCode;
pub use error::ApiError;
pub use routes::{
    netpol::{PolicyAnswer, PolicyCheck},
    profiles::{Imported, ProfileView},
    workloads::ModeEntry,
};
pub use state::{
    Agent, AgentRuntime, AlertCounters, AuditRecord, CanaryReport, EnforceCounters,
    EnforcementStatus, RingUse, Settings, Versions, WorkloadEnforcement,
};

/// The audit action of a mode change (its history is read from the audit log).
pub const SET_MODE_ACTION: &str = routes::workloads::SET_MODE;

/// Largest request body accepted (an imported profile is the biggest).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// How long a request may take before it is answered with 408.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The API router over `agent`, for a trusted caller (root over the unix socket, or the CLI
/// over the store): every call acts as [`auth::Identity::local`].
pub fn app(agent: Arc<dyn Agent>) -> Router {
    app_with(agent, auth::Auth::Trusted(auth::Identity::local()))
}

/// The API router over `agent`, authenticating callers with `auth`.
pub fn app_with(agent: Arc<dyn Agent>, auth: auth::Auth) -> Router {
    let (router, _) = routes::router();
    router
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::authenticate,
        ))
        .layer(axum::Extension(cache::ResponseCache::default()))
        .layer(axum::middleware::from_fn(error::problems))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(agent)
}

/// The OpenAPI 3.1 document of every route (served at `/v1/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::router().1
}

/// A workload id as one URL path segment (every `/` and reserved character percent-encoded).
pub fn workload_segment(workload: &str) -> String {
    percent_encoding::utf8_percent_encode(workload, percent_encoding::NON_ALPHANUMERIC).to_string()
}
