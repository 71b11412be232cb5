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

pub mod client;
pub mod error;
mod routes;
pub mod serve;
pub mod state;
pub mod summary;

use std::sync::Arc;

use axum::Router;

pub use error::ApiError;
pub use routes::{
    profiles::{Imported, ProfileView},
    workloads::ModeEntry,
};
pub use state::{
    Agent, AgentRuntime, AlertCounters, AuditRecord, CanaryReport, EnforceCounters,
    EnforcementStatus, Settings, WorkloadEnforcement,
};

/// Largest request body accepted (an imported profile is the biggest).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The API router over `agent`.
pub fn app(agent: Arc<dyn Agent>) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn(error::problems))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(agent)
}

/// A workload id as one URL path segment (every `/` and reserved character percent-encoded).
pub fn workload_segment(workload: &str) -> String {
    percent_encoding::utf8_percent_encode(workload, percent_encoding::NON_ALPHANUMERIC).to_string()
}
