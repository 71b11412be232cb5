//! `GET /v1/alerts[?workload=&severity=&limit=]`: stored alerts, most recent first; and
//! `GET /v1/audit[?workload=]`: the actions taken because of them, oldest first.

use axum::{
    Json,
    extract::{Query, State},
};
use scorer::alert::{Alert, Severity};
use serde::Deserialize;

use super::AgentRef;
use crate::{ApiError, AuditRecord};

/// Filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    workload: Option<String>,
    /// The lowest severity to list.
    severity: Option<String>,
    /// At most this many (default 100).
    limit: Option<usize>,
}

/// Alerts matching the filter, the most recently seen first.
pub async fn list(
    State(agent): AgentRef,
    Query(f): Query<Filter>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    let min: Severity = match &f.severity {
        None => Severity::Info,
        Some(s) => s
            .parse()
            .map_err(|e: scorer::alert::UnknownSeverity| ApiError::bad_request(e.to_string()))?,
    };
    let mut alerts: Vec<Alert> = agent
        .alerts()?
        .into_iter()
        .filter(|a| a.severity >= min)
        .filter(|a| f.workload.as_ref().is_none_or(|w| &a.workload == w))
        .collect();
    alerts.sort_by(|a, b| b.last_ns.cmp(&a.last_ns).then_with(|| a.key.cmp(&b.key)));
    alerts.truncate(f.limit.unwrap_or(100));
    Ok(Json(alerts))
}

/// Filter of the audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    workload: Option<String>,
}

/// The audit log, oldest first.
pub async fn audit(
    State(agent): AgentRef,
    Query(f): Query<AuditFilter>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    Ok(Json(
        agent
            .audit()?
            .into_iter()
            .filter(|r| f.workload.as_ref().is_none_or(|w| &r.workload == w))
            .collect(),
    ))
}
