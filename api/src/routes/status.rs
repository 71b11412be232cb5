//! `GET /v1/status`.

use axum::Json;

use super::AgentRef;
use crate::{ApiError, summary};

/// The agent, its settings and every workload.
pub async fn get(
    axum::extract::State(agent): AgentRef,
) -> Result<Json<summary::StatusReport>, ApiError> {
    Ok(Json(summary::StatusReport {
        agent: agent.runtime(),
        settings: agent.settings(),
        workloads: summary::workloads(agent.as_ref())?,
    }))
}
