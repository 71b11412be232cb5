//! Alerts: query, acknowledge, live stream; and the audit log of actions taken.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    response::sse::{Event as SseEvent, KeepAlive, Sse},
};
use futures_util::{Stream, StreamExt as _};
use scorer::alert::{Ack, Alert, Severity};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{AgentRef, json_body_or_default};
use crate::{ApiError, AuditRecord, auth::Caller};

/// Filters of `GET /v1/alerts` and the live stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only this workload's alerts.
    workload: Option<String>,
    /// The lowest severity to list (info, low, medium, high, critical).
    severity: Option<String>,
    /// Only alerts with a reason of this rule (e.g. `crypto-miner`, `novelty`).
    rule: Option<String>,
    /// Only alerts last seen at or after this time (Unix-epoch nanoseconds).
    since: Option<u64>,
    /// Only alerts first seen at or before this time (Unix-epoch nanoseconds).
    until: Option<u64>,
    /// `true`: only acknowledged alerts; `false`: only unacknowledged ones.
    acknowledged: Option<bool>,
    /// At most this many (default 100, at most 10 000). Not used by the stream.
    limit: Option<usize>,
}

/// A checked [`Filter`].
struct Matcher {
    filter: Filter,
    min: Severity,
}

impl Matcher {
    fn new(filter: Filter) -> Result<Matcher, ApiError> {
        let min = match &filter.severity {
            None => Severity::Info,
            Some(s) => s.parse().map_err(|e: scorer::alert::UnknownSeverity| {
                ApiError::bad_request(e.to_string())
            })?,
        };
        super::check_period(filter.since, filter.until)?;
        Ok(Matcher { filter, min })
    }

    fn matches(&self, a: &Alert) -> bool {
        let f = &self.filter;
        a.severity >= self.min
            && f.workload.as_ref().is_none_or(|w| &a.workload == w)
            && f.rule
                .as_ref()
                .is_none_or(|r| a.reasons.iter().any(|x| &x.rule == r))
            && f.since.is_none_or(|s| a.last_ns >= s)
            && f.until.is_none_or(|u| a.first_ns <= u)
            && f.acknowledged.is_none_or(|want| a.ack.is_some() == want)
    }
}

/// Largest `limit` of an alert query.
const MAX_LIMIT: usize = 10_000;

/// Stored alerts matching the filter, the most recently seen first.
#[utoipa::path(get, operation_id = "list_alerts", path = "/v1/alerts", tag = "alerts", params(Filter),
    responses((status = 200, description = "Alerts, most recently seen first",
               body = [serde_json::Value]),
              (status = 400, description = "A filter is not valid")))]
pub async fn list(
    State(agent): AgentRef,
    Query(f): Query<Filter>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    let limit = f.limit.unwrap_or(100);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is above the maximum {MAX_LIMIT}"
        )));
    }
    let m = Matcher::new(f)?;
    let mut alerts: Vec<Alert> = agent
        .alerts()?
        .into_iter()
        .filter(|a| m.matches(a))
        .collect();
    alerts.sort_by(|a, b| b.last_ns.cmp(&a.last_ns).then_with(|| a.key.cmp(&b.key)));
    alerts.truncate(limit);
    Ok(Json(alerts))
}

/// The body of an acknowledgement.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Why, in the reviewer's words (kept with the alert and in the audit log).
    #[serde(default)]
    comment: String,
}

/// Acknowledges an alert: it stays stored, marked with who acknowledged it, when and why.
#[utoipa::path(post, operation_id = "acknowledge_alert", path = "/v1/alerts/{key}/ack", tag = "alerts",
    params(("key" = String, Path, description = "The alert's key")),
    request_body(content = AckRequest, description = "An optional comment"),
    responses((status = 200, description = "The alert, acknowledged", body = serde_json::Value),
              (status = 404, description = "No such alert"),
              (status = 409, description = "Already acknowledged")))]
pub async fn acknowledge(
    State(agent): AgentRef,
    Caller(who): Caller,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Alert>, ApiError> {
    let req: AckRequest = json_body_or_default(&body)?;
    let now = agent.now_ns();
    let ack = Ack {
        by: who.name.clone(),
        at_ns: now,
        comment: req.comment,
    };
    let alert = agent.acknowledge(&key, ack)?;
    let mut rec = AuditRecord::change(
        &who.name,
        &alert.workload,
        "acknowledge",
        format!("alert {key}"),
        now,
    );
    rec.alert_key = alert.key.clone();
    rec.alert_summary = alert.summary.clone();
    agent.record_audit(rec)?;
    Ok(Json(alert))
}

/// How often the live stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// New alerts as the agent raises them, as Server-Sent Events (`event: alert`, `data:` the alert as JSON), with
/// the same filters as the query (`limit` aside). A client that falls behind is told how many it
/// missed (`event: lagged`).
#[utoipa::path(get, operation_id = "stream_alerts", path = "/v1/alerts/stream", tag = "alerts", params(Filter),
    responses((status = 200, description = "text/event-stream of alerts", content_type = "text/event-stream", body = String),
              (status = 503, description = "No agent is running to stream from")))]
pub async fn stream(
    State(agent): AgentRef,
    Query(f): Query<Filter>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let m = Matcher::new(f)?;
    let rx = agent.subscribe_alerts().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no agent is running: the live stream needs `baseliner run`",
        )
    })?;
    let events = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |item| {
        let out = match item {
            Ok(alert) if m.matches(&alert) => SseEvent::default()
                .event("alert")
                .id(alert.key.clone())
                .json_data(&alert)
                .ok(),
            Ok(_) => None,
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                Some(SseEvent::default().event("lagged").data(n.to_string()))
            }
        };
        std::future::ready(out.map(Ok))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Filter of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only this workload's records.
    workload: Option<String>,
    /// Only records at or after this time (Unix-epoch nanoseconds).
    since: Option<u64>,
    /// Only records at or before this time (Unix-epoch nanoseconds).
    until: Option<u64>,
}

impl AuditFilter {
    fn matches(&self, r: &AuditRecord) -> bool {
        self.workload.as_ref().is_none_or(|w| &r.workload == w)
            && self.since.is_none_or(|s| r.action.at_ns >= s)
            && self.until.is_none_or(|u| r.action.at_ns <= u)
    }
}

/// The audit log (responses and changes made through the API), oldest first.
#[utoipa::path(get, operation_id = "get_audit_log", path = "/v1/audit", tag = "reports", params(AuditFilter),
    responses((status = 200, description = "Audit records, oldest first", body = [serde_json::Value])))]
pub async fn audit(
    State(agent): AgentRef,
    Query(f): Query<AuditFilter>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    Ok(Json(
        agent
            .audit()?
            .into_iter()
            .filter(|r| f.matches(r))
            .collect(),
    ))
}
