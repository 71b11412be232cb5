//! The `/v1` routes, one module per resource.

pub mod alerts;
pub mod profiles;
pub mod status;
pub mod workloads;

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post, put},
};

use crate::{Agent, ApiError};

/// The state every handler gets.
type AgentRef = axum::extract::State<Arc<dyn Agent>>;

/// Every route, without state.
pub fn router() -> Router<Arc<dyn Agent>> {
    Router::new()
        .route("/v1/status", get(status::get))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/audit", get(alerts::audit))
        .route("/v1/modes", get(workloads::modes))
        .route("/v1/workloads", get(workloads::list))
        .route("/v1/workloads/{workload}", get(workloads::show))
        .route("/v1/workloads/{workload}/mode", put(workloads::set_mode))
        .route("/v1/workloads/{workload}/profile", get(profiles::show))
        .route("/v1/workloads/{workload}/export", get(profiles::export))
        .route("/v1/profiles", get(profiles::list))
        .route("/v1/profiles/import", post(profiles::import))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!("no route {}", uri.path()))
        })
}

/// Parses a JSON body with an error that says what is wrong.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid: {e}")))
}
