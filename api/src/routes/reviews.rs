//! The review queue: deviations proposed as allow-list entries, approved (exactly or as a
//! broader pattern) or rejected by a named reviewer, every decision audited.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, Query, State},
    response::Response,
};
use profiles::review::{Approval, Proposal, State as ReviewState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AgentRef, json_body, json_body_or_default};
use crate::{
    Agent, ApiError, AuditRecord, Versions,
    auth::Caller,
    cache::{self, AcceptEncoding, ResponseCache},
};

/// Filters of the review queue.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only this workload's proposals.
    workload: Option<String>,
    /// Only proposals in this state: pending, approved or rejected.
    state: Option<String>,
}

/// Proposed allow-list entries: pending first, then approved, then rejected; most recently
/// seen first within each.
#[utoipa::path(get, operation_id = "list_reviews", path = "/v1/reviews", tag = "reviews", params(Filter),
    responses((status = 200, description = "Proposals", body = [serde_json::Value]),
              (status = 400, description = "Unknown state")))]
pub async fn list(
    State(agent): AgentRef,
    Extension(cache): Extension<ResponseCache>,
    accept: AcceptEncoding,
    uri: axum::http::Uri,
    Query(f): Query<Filter>,
) -> Result<Response, ApiError> {
    let state: Option<ReviewState> = f.state.as_deref().map(str::parse).transpose()?;
    let version = agent.versions().map(|v| Versions::read(&v.reviews));
    cache.serve(&uri.to_string(), version, accept, || {
        cache::json(&agent.reviews(f.workload.as_deref(), state)?)
    })
}

/// One proposal, with its example events and the alerts it raised.
#[utoipa::path(get, operation_id = "get_review", path = "/v1/reviews/{id}", tag = "reviews",
    params(("id" = String, Path, description = "The proposal's id")),
    responses((status = 200, description = "The proposal", body = serde_json::Value),
              (status = 404, description = "No such proposal")))]
pub async fn show(
    State(agent): AgentRef,
    Path(id): Path<String>,
) -> Result<Json<Proposal>, ApiError> {
    Ok(Json(agent.review(&id)?))
}

/// A reviewer's decision on one proposal.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Why (kept with the decision and in the audit log).
    #[serde(default)]
    comment: String,
    /// Approve as this broader pattern instead of the exact entry: a directory glob
    /// (`/opt/app/bin/*`, `/opt/app/**`), a CIDR with an optional port (`10.0.0.0/8:443`, port
    /// `*` for any). It must cover the proposed entry. Not allowed when rejecting.
    #[serde(default)]
    pattern: Option<String>,
}

/// Approves, audits; the entry the profile gained.
fn approve_one(
    agent: &dyn Agent,
    who: &str,
    id: &str,
    req: &DecisionRequest,
) -> Result<Approval, ApiError> {
    let a = agent.approve(id, who, &req.comment, req.pattern.as_deref())?;
    let target = if a.entry == a.exact {
        a.entry.to_string()
    } else {
        format!("{} (proposed: {})", a.entry, a.exact)
    };
    agent.record_audit(AuditRecord::change(
        who,
        &a.workload,
        "approve",
        with_comment(target, &req.comment),
        a.at_ns,
    ))?;
    Ok(a)
}

fn reject_one(
    agent: &dyn Agent,
    who: &str,
    id: &str,
    req: &DecisionRequest,
) -> Result<Proposal, ApiError> {
    if req.pattern.is_some() {
        return Err(ApiError::bad_request("a rejection takes no pattern"));
    }
    let p = agent.reject(id, who, &req.comment)?;
    let at = p.decision.as_ref().map_or(agent.now_ns(), |d| d.at_ns);
    agent.record_audit(AuditRecord::change(
        who,
        &p.workload,
        "reject",
        with_comment(p.entry.to_string(), &req.comment),
        at,
    ))?;
    Ok(p)
}

fn with_comment(target: String, comment: &str) -> String {
    if comment.is_empty() {
        target
    } else {
        format!("{target}: {comment}")
    }
}

/// Approves a proposal: the entry (or the pattern) joins the workload's profile at once, marked
/// with the reviewer, time and comment; it stops alerting, and in enforce mode the kernel
/// allows it within a second.
#[utoipa::path(post, operation_id = "approve_review", path = "/v1/reviews/{id}/approve", tag = "reviews",
    params(("id" = String, Path, description = "The proposal's id")),
    request_body(content = DecisionRequest, description = "Comment and optional pattern"),
    responses((status = 200, description = "The approval", body = serde_json::Value),
              (status = 400, description = "The pattern is not valid or does not cover the entry"),
              (status = 404, description = "No such proposal"),
              (status = 409, description = "Already decided")))]
pub async fn approve(
    State(agent): AgentRef,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Approval>, ApiError> {
    let req: DecisionRequest = json_body_or_default(&body)?;
    Ok(Json(approve_one(agent.as_ref(), &who.name, &id, &req)?))
}

/// Rejects a proposal: it keeps alerting (and is blocked in enforce mode).
#[utoipa::path(post, operation_id = "reject_review", path = "/v1/reviews/{id}/reject", tag = "reviews",
    params(("id" = String, Path, description = "The proposal's id")),
    request_body(content = DecisionRequest, description = "Comment"),
    responses((status = 200, description = "The rejected proposal", body = serde_json::Value),
              (status = 404, description = "No such proposal"),
              (status = 409, description = "Already decided")))]
pub async fn reject(
    State(agent): AgentRef,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Proposal>, ApiError> {
    let req: DecisionRequest = json_body_or_default(&body)?;
    Ok(Json(reject_one(agent.as_ref(), &who.name, &id, &req)?))
}

/// A decision on several proposals.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// `approve` or `reject`.
    action: String,
    /// The proposals (at most 1000).
    ids: Vec<String>,
    /// Why, for all of them.
    #[serde(default)]
    comment: String,
}

/// The outcome of a bulk decision for one proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BulkOutcome {
    /// The proposal.
    pub id: String,
    /// `approved`, `rejected`, or why not.
    pub outcome: String,
    /// True when the decision was made.
    pub ok: bool,
}

/// Most proposals one bulk call decides.
const MAX_BULK: usize = 1000;

/// Approves (as exact entries) or rejects several proposals; each is decided and audited on its
/// own, and the answer says how each went.
#[utoipa::path(post, operation_id = "decide_reviews", path = "/v1/reviews/bulk", tag = "reviews",
    request_body = BulkRequest,
    responses((status = 200, description = "One outcome per id", body = [BulkOutcome]),
              (status = 400, description = "Unknown action, no ids or too many")))]
pub async fn bulk(
    State(agent): AgentRef,
    Caller(who): Caller,
    body: Bytes,
) -> Result<Json<Vec<BulkOutcome>>, ApiError> {
    let req: BulkRequest = json_body(&body)?;
    let approve = match req.action.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown action {other:?}: expected approve or reject"
            )));
        }
    };
    if req.ids.is_empty() || req.ids.len() > MAX_BULK {
        return Err(ApiError::bad_request(format!(
            "ids must name 1 to {MAX_BULK} proposals, not {}",
            req.ids.len()
        )));
    }
    let one = DecisionRequest {
        comment: req.comment,
        pattern: None,
    };
    let out = req
        .ids
        .iter()
        .map(|id| {
            let r = if approve {
                approve_one(agent.as_ref(), &who.name, id, &one).map(|_| "approved")
            } else {
                reject_one(agent.as_ref(), &who.name, id, &one).map(|_| "rejected")
            };
            match r {
                Ok(done) => BulkOutcome {
                    id: id.clone(),
                    outcome: done.into(),
                    ok: true,
                },
                Err(e) => BulkOutcome {
                    id: id.clone(),
                    outcome: e.detail,
                    ok: false,
                },
            }
        })
        .collect();
    Ok(Json(out))
}

/// Filter of the approvals.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApprovalFilter {
    /// Only this workload's approvals.
    workload: Option<String>,
}

/// Approvals in effect (entry, the proposal it came from, reviewer, time, comment), oldest first.
#[utoipa::path(get, operation_id = "list_approvals", path = "/v1/approvals", tag = "reviews", params(ApprovalFilter),
    responses((status = 200, description = "Approvals", body = [serde_json::Value])))]
pub async fn approvals(
    State(agent): AgentRef,
    Query(f): Query<ApprovalFilter>,
) -> Result<Json<Vec<Approval>>, ApiError> {
    Ok(Json(agent.approvals(f.workload.as_deref())?))
}
