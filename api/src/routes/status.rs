//! `GET /v1/status`.

use axum::Json;

use super::AgentRef;
use crate::{ApiError, summary};

/// The agent (kernel counters, alerts, delivery, enforcement, canary), its settings and every
/// workload.
#[utoipa::path(get, operation_id = "get_status", path = "/v1/status", tag = "status",
    responses((status = 200, description = "Status", body = serde_json::Value)))]
pub async fn get(
    axum::extract::State(agent): AgentRef,
) -> Result<Json<summary::StatusReport>, ApiError> {
    Ok(Json(summary::StatusReport {
        agent: agent.runtime(),
        settings: agent.settings(),
        workloads: summary::workloads(agent.as_ref())?,
    }))
}
