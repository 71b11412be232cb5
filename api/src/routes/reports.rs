//! Reports: the audit report of a workload over a period, as JSON or HTML.

use axum::{
    Json,
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AgentRef;
use crate::{ApiError, report};

/// The report's subject, period and format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The workload.
    workload: String,
    /// Start of the period (Unix-epoch nanoseconds; default: the beginning).
    since: Option<u64>,
    /// End of the period (Unix-epoch nanoseconds; default: now).
    until: Option<u64>,
    /// `json` (default) or `html`.
    format: Option<String>,
}

/// The period of a report query, checked.
pub fn period(now: u64, since: Option<u64>, until: Option<u64>) -> Result<(u64, u64), ApiError> {
    let (since, until) = (since.unwrap_or(0), until.unwrap_or(now));
    super::check_period(Some(since), Some(until))?;
    Ok((since, until))
}

/// Whether the report is wanted as HTML.
pub fn wants_html(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("html") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown report format {other:?}: expected json or html"
        ))),
    }
}

/// An HTML page answer.
pub fn html_page(page: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// A workload's audit report: profile revisions with content hashes, mode changes, approvals
/// and rejections with reviewer and comment, enforcement actions, alerts.
#[utoipa::path(get, operation_id = "audit_report", path = "/v1/reports/audit", tag = "reports", params(AuditQuery),
    responses((status = 200, description = "The report (JSON, or an HTML page)", body = serde_json::Value),
              (status = 400, description = "Bad period or format"),
              (status = 404, description = "Unknown workload")))]
pub async fn audit(
    State(agent): AgentRef,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let html = wants_html(q.format.as_deref())?;
    let (since, until) = period(agent.now_ns(), q.since, q.until)?;
    let r = report::audit_report(agent.as_ref(), &q.workload, since, until)?;
    Ok(if html {
        html_page(report::audit_html(&r))
    } else {
        Json(r).into_response()
    })
}

/// The period and format of the PCI-DSS report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PciQuery {
    /// Start of the period (Unix-epoch nanoseconds; default: the beginning).
    since: Option<u64>,
    /// End of the period (Unix-epoch nanoseconds; default: now).
    until: Option<u64>,
    /// `json` (default) or `html`.
    format: Option<String>,
}

/// The PCI-DSS access report: which workloads, programs and users read or wrote the configured
/// cardholder-data paths in the period, from the evidence store.
#[utoipa::path(get, operation_id = "pci_report", path = "/v1/reports/pci", tag = "reports", params(PciQuery),
    responses((status = 200, description = "The report (JSON, or an HTML page)", body = serde_json::Value),
              (status = 400, description = "Bad period or format"),
              (status = 409, description = "No cardholder-data paths configured"),
              (status = 503, description = "No evidence store")))]
pub async fn pci(State(agent): AgentRef, Query(q): Query<PciQuery>) -> Result<Response, ApiError> {
    let html = wants_html(q.format.as_deref())?;
    let (since, until) = period(agent.now_ns(), q.since, q.until)?;
    let r = report::pci_report(agent.as_ref(), since, until)?;
    Ok(if html {
        html_page(report::pci_html(&r))
    } else {
        Json(r).into_response()
    })
}
