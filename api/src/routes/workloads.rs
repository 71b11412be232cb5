//! Workloads and their modes.

use axum::{Json, body::Bytes, extract::Path};
use profiles::mode::Mode;
use serde::{Deserialize, Serialize};

use super::{AgentRef, json_body};
use crate::{
    ApiError,
    summary::{self, ModeChange, WorkloadSummary},
};

/// `GET /v1/workloads`
pub async fn list(
    axum::extract::State(agent): AgentRef,
) -> Result<Json<Vec<WorkloadSummary>>, ApiError> {
    Ok(Json(summary::workloads(agent.as_ref())?))
}

fn unknown(workload: &str) -> ApiError {
    ApiError::not_found(format!(
        "unknown workload {workload:?}: it has no profile, no mode and no cgroup \
         (`baseliner status` lists the workloads)"
    ))
}

/// `GET /v1/workloads/{workload}` (a workload with only a cgroup has the default mode).
pub async fn show(
    axum::extract::State(agent): AgentRef,
    Path(workload): Path<String>,
) -> Result<Json<WorkloadSummary>, ApiError> {
    match summary::workload(agent.as_ref(), &workload)? {
        Some(w) => Ok(Json(w)),
        None if agent.workload_exists(&workload) => Ok(Json(WorkloadSummary {
            mode: agent.settings().default_mode,
            mode_source: summary::ModeSource::Default,
            revisions: Vec::new(),
            workload,
        })),
        None => Err(unknown(&workload)),
    }
}

/// One workload's mode in `GET /v1/modes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeEntry {
    /// Workload id.
    pub workload: String,
    /// Its mode.
    pub mode: Mode,
    /// Where the mode comes from.
    pub source: summary::ModeSource,
}

/// `GET /v1/modes`: every known workload's mode, set or default.
pub async fn modes(
    axum::extract::State(agent): AgentRef,
) -> Result<Json<Vec<ModeEntry>>, ApiError> {
    Ok(Json(
        summary::workloads(agent.as_ref())?
            .into_iter()
            .map(|w| ModeEntry {
                workload: w.workload,
                mode: w.mode,
                source: w.mode_source,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetMode {
    mode: String,
}

/// `PUT /v1/workloads/{workload}/mode` with `{"mode": "learn|alert|dry-run|enforce"}`.
pub async fn set_mode(
    axum::extract::State(agent): AgentRef,
    Path(workload): Path<String>,
    body: Bytes,
) -> Result<Json<ModeChange>, ApiError> {
    let req: SetMode = json_body(&body)?;
    let mode: Mode = req
        .mode
        .parse()
        .map_err(|e: profiles::mode::UnknownMode| ApiError::bad_request(e.to_string()))?;
    let known =
        agent.workload_exists(&workload) || summary::workload(agent.as_ref(), &workload)?.is_some();
    if !known {
        return Err(unknown(&workload));
    }
    let previous = agent.set_mode(&workload, mode)?;
    tracing::info!(%workload, %mode, ?previous, "mode set");
    Ok(Json(ModeChange {
        workload,
        mode,
        previous,
    }))
}
