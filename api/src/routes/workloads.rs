//! Workloads and their modes.

use axum::{Json, body::Bytes, extract::Path};
use profiles::mode::Mode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AgentRef, json_body};
use crate::{
    ApiError, AuditRecord,
    auth::Caller,
    summary::{self, ModeChange, WorkloadSummary},
};

/// The audit action of a mode change.
pub const SET_MODE: &str = "set-mode";

/// Every known workload with its mode, learning progress and entry counts.
#[utoipa::path(get, operation_id = "list_workloads", path = "/v1/workloads", tag = "workloads",
    responses((status = 200, description = "Workloads", body = [serde_json::Value])))]
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

/// One workload: mode (and where it comes from), learning progress, stable since, entry counts
/// per revision. A workload with only a cgroup has the default mode.
#[utoipa::path(get, operation_id = "get_workload", path = "/v1/workloads/{workload}", tag = "workloads",
    params(("workload" = String, Path, description = "Workload id, percent-encoded as one segment")),
    responses((status = 200, description = "The workload", body = serde_json::Value),
              (status = 404, description = "Unknown workload")))]
pub async fn show(
    axum::extract::State(agent): AgentRef,
    Path(workload): Path<String>,
) -> Result<Json<WorkloadSummary>, ApiError> {
    match summary::workload(agent.as_ref(), &workload)? {
        Some(w) => Ok(Json(w)),
        None if agent.workload_exists(&workload) => Ok(Json(WorkloadSummary {
            mode: agent.settings().default_mode,
            mode_source: summary::ModeSource::Default,
            mode_annotation: None,
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
    /// On Kubernetes, the annotation that decides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
}

/// Every known workload's mode, set or default.
#[utoipa::path(get, operation_id = "list_modes", path = "/v1/modes", tag = "workloads",
    responses((status = 200, description = "Modes", body = [serde_json::Value])))]
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
                annotation: w.mode_annotation,
            })
            .collect(),
    ))
}

/// The body of a mode change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMode {
    /// `learn`, `alert`, `dry-run` or `enforce`.
    mode: String,
}

/// Sets a workload's mode; takes effect at once (in enforce mode the kernel blocks within a
/// second). Audited under the caller's name.
#[utoipa::path(put, operation_id = "set_mode", path = "/v1/workloads/{workload}/mode", tag = "workloads",
    params(("workload" = String, Path, description = "Workload id, percent-encoded as one segment")),
    request_body = SetMode,
    responses((status = 200, description = "The mode set, and the one before", body = serde_json::Value),
              (status = 400, description = "Malformed body or unknown mode"),
              (status = 404, description = "Unknown workload"),
              (status = 409, description = "A Kubernetes annotation sets this workload's mode")))]
pub async fn set_mode(
    axum::extract::State(agent): AgentRef,
    Caller(who): Caller,
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
    if let Some(annotation) = agent.mode_annotations().get(&workload) {
        return Err(ApiError::conflict(format!(
            "the mode of {workload} is set by the {annotation}: change the annotation instead"
        )));
    }
    let previous = agent.set_mode(&workload, mode)?;
    tracing::info!(%workload, %mode, ?previous, by = %who.name, "mode set");
    let was = previous.map_or_else(|| "default".to_string(), |m| m.to_string());
    agent.record_audit(AuditRecord::change(
        &who.name,
        &workload,
        SET_MODE,
        format!("{mode} (was {was})"),
        agent.now_ns(),
    ))?;
    Ok(Json(ModeChange {
        workload,
        mode,
        previous,
    }))
}

/// One mode change in a workload's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModeHistoryEntry {
    /// When, Unix-epoch nanoseconds.
    pub at_ns: u64,
    /// Who set it.
    pub by: String,
    /// What changed, e.g. `alert (was learn)`.
    pub change: String,
}

/// The workload's mode changes, oldest first (from the audit log).
#[utoipa::path(get, operation_id = "mode_history", path = "/v1/workloads/{workload}/modes", tag = "workloads",
    params(("workload" = String, Path, description = "Workload id, percent-encoded as one segment")),
    responses((status = 200, description = "Mode changes, oldest first", body = [ModeHistoryEntry])))]
pub async fn mode_history(
    axum::extract::State(agent): AgentRef,
    Path(workload): Path<String>,
) -> Result<Json<Vec<ModeHistoryEntry>>, ApiError> {
    Ok(Json(
        agent
            .audit()?
            .into_iter()
            .filter(|r| r.workload == workload && r.action.action == SET_MODE)
            .map(|r| ModeHistoryEntry {
                at_ns: r.action.at_ns,
                by: r.actor,
                change: r.action.target,
            })
            .collect(),
    ))
}
