//! The evidence store: events kept for investigation, queried by workload, kind and time.

use axum::{
    Json,
    extract::{Query, State},
};
use profiles::evidence::{EvidenceQuery, KINDS};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AgentRef;
use crate::ApiError;

/// Filters of the evidence query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only this workload's events.
    workload: Option<String>,
    /// Only these kinds, comma-separated: exec, open, connect, bind, listen, ptrace, setuid,
    /// setgid.
    kind: Option<String>,
    /// Only events at or after this time (Unix-epoch nanoseconds).
    since: Option<u64>,
    /// Only events at or before this time (Unix-epoch nanoseconds).
    until: Option<u64>,
    /// At most this many, the earliest first (default 1000, at most 100 000).
    limit: Option<usize>,
}

/// Largest `limit` of an evidence query.
const MAX_LIMIT: usize = 100_000;

impl Filter {
    /// The store query this filter asks for, checked.
    pub fn query(self) -> Result<EvidenceQuery, ApiError> {
        let limit = self.limit.unwrap_or(1000);
        if limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "limit {limit} is above the maximum {MAX_LIMIT}"
            )));
        }
        let kinds: Vec<String> = self
            .kind
            .as_deref()
            .map(|k| k.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown event kind {bad:?}: expected one of {}",
                KINDS.join(", ")
            )));
        }
        super::check_period(self.since, self.until)?;
        Ok(EvidenceQuery {
            workload: self.workload,
            kinds,
            since_ns: self.since,
            until_ns: self.until,
            limit: Some(limit),
        })
    }
}

/// Events kept in the evidence store, oldest first (argv already redacted).
#[utoipa::path(get, operation_id = "list_events", path = "/v1/events", tag = "evidence", params(Filter),
    responses((status = 200, description = "Events in the dataset format (datasets/README.md)",
               body = [serde_json::Value]),
              (status = 400, description = "A filter is not valid"),
              (status = 503, description = "No evidence store")))]
pub async fn list(
    State(agent): AgentRef,
    Query(f): Query<Filter>,
) -> Result<Json<Vec<profiles::Event>>, ApiError> {
    let q = f.query()?;
    Ok(Json(agent.events(&q)?))
}
