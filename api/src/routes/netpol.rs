//! Kubernetes network policies: one generated from a workload's profile, and the policies in
//! force checked against the connections the agent observed.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AgentRef;
use crate::ApiError;

/// A generated NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyAnswer {
    /// The workload.
    pub workload: String,
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
    /// The pods it selects (`matchLabels`).
    pub selector: BTreeMap<String, String>,
    /// Where the selector came from (the workload's pods on this node, or the request).
    pub selector_source: String,
    /// What the policy leaves out and why (loopback, unix sockets, DNS, ...).
    pub notes: Vec<String>,
    /// The policy as YAML, ready for `kubectl apply -f -`.
    pub yaml: String,
    /// The policy as JSON.
    pub policy: serde_json::Value,
}

/// The policies in force checked against observed connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyCheck {
    /// The namespace checked.
    pub namespace: String,
    /// NetworkPolicies in it.
    pub policies: usize,
    /// Observed flows judged.
    pub judged: usize,
    /// Flows the policies should have denied: the network plugin does not enforce them.
    pub denied: Vec<String>,
    /// Allow rules no observed flow used.
    pub unused: Vec<String>,
    /// Parts of policies that could not be read.
    pub warnings: Vec<String>,
    /// The whole report, readable.
    pub report: String,
}

/// Options of the generated policy.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PolicyQuery {
    /// The pods to select, `key=value` pairs separated by commas (default: the labels of the
    /// workload's pods on this node, less those that change per rollout).
    selector: Option<String>,
    /// `yaml` for the policy alone as YAML; default JSON.
    format: Option<String>,
}

/// Parses `a=b,c=d`.
fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, ApiError> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ApiError::bad_request(format!("selector {pair:?} is not key=value"))
            })?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// A NetworkPolicy for the workload from its latest profile: ingress on the ports it listened
/// on, egress to the destinations it connected to.
#[utoipa::path(get, operation_id = "workload_netpol", path = "/v1/workloads/{workload}/netpol",
    tag = "kubernetes", params(("workload" = String, Path, description = "Workload id, percent-encoded as one segment"), PolicyQuery),
    responses((status = 200, description = "The policy", body = PolicyAnswer),
              (status = 400, description = "A bad selector or format"),
              (status = 404, description = "Unknown workload or no profile"),
              (status = 409, description = "No namespace or pod labels known for the workload")))]
pub async fn generate(
    State(agent): AgentRef,
    Path(workload): Path<String>,
    Query(q): Query<PolicyQuery>,
) -> Result<Response, ApiError> {
    let selector = q.selector.as_deref().map(parse_selector).transpose()?;
    let yaml = match q.format.as_deref() {
        None | Some("json") => false,
        Some("yaml") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}: json or yaml"
            )));
        }
    };
    let answer = agent.network_policy(&workload, selector)?;
    Ok(if yaml {
        ([(header::CONTENT_TYPE, "application/yaml")], answer.yaml).into_response()
    } else {
        Json(answer).into_response()
    })
}

/// The namespace to check.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// The namespace whose policies and workloads to check.
    namespace: String,
}

/// Checks the namespace's NetworkPolicies against the connections its workloads made: each
/// observed flow the policies should have denied (the network plugin does not enforce them),
/// and each allow rule never used.
#[utoipa::path(get, operation_id = "check_netpol", path = "/v1/netpol/check", tag = "kubernetes",
    params(CheckQuery),
    responses((status = 200, description = "The check", body = PolicyCheck),
              (status = 400, description = "No namespace given"),
              (status = 503, description = "Not on Kubernetes, or the API server failed")))]
pub async fn check(
    State(agent): AgentRef,
    Query(q): Query<CheckQuery>,
) -> Result<Json<PolicyCheck>, ApiError> {
    if q.namespace.trim().is_empty() {
        return Err(ApiError::bad_request("namespace must not be empty"));
    }
    Ok(Json(agent.check_network_policies(&q.namespace)?))
}
