//! Profiles: list, show, export, import.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, Query},
    http::header,
    response::{IntoResponse, Response},
};
use profiles::{
    learning::Learning,
    store::{ProfileKey, StoredProfile},
};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::AgentRef;
use crate::{
    ApiError, AuditRecord, Versions,
    auth::Caller,
    cache::{self, AcceptEncoding, ResponseCache},
    summary::{self, ProfileListing, RevisionSummary},
};

/// Every stored profile (each workload's revisions) with its learning progress.
#[utoipa::path(get, operation_id = "list_profiles", path = "/v1/profiles", tag = "profiles",
    responses((status = 200, description = "Profiles", body = [serde_json::Value])))]
pub async fn list(
    axum::extract::State(agent): AgentRef,
) -> Result<Json<Vec<ProfileListing>>, ApiError> {
    let settings = agent.settings();
    let now = agent.now_ns();
    let mut out = Vec::new();
    for key in agent.profile_keys()? {
        if let Some(p) = agent.profile(&key)? {
            out.push(ProfileListing {
                summary: RevisionSummary::of(&key.revision, &p, now, &settings),
                workload: key.workload,
            });
        }
    }
    Ok(Json(out))
}

/// Which revision, and for exports which format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Select {
    /// The revision (default: the latest).
    revision: Option<String>,
    /// Export format: `json` (default) or `yaml`.
    format: Option<String>,
}

fn load(
    agent: &dyn crate::Agent,
    workload: &str,
    revision: Option<&str>,
) -> Result<(ProfileKey, StoredProfile), ApiError> {
    let key = summary::pick_revision(agent, workload, revision)?;
    let p = agent.profile(&key)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no profile for workload {:?} revision {:?}",
            key.workload, key.revision
        ))
    })?;
    Ok((key, p))
}

/// A profile with its learning state and progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileView {
    /// Workload id.
    pub workload: String,
    /// Revision.
    pub revision: String,
    /// Learning progress now.
    pub summary: RevisionSummary,
    /// The durable learning state.
    pub learning: Learning,
    /// The entries.
    pub profile: profiles::model::Profile,
}

/// A workload's profile: entries, learning state and progress (default: the latest revision).
#[utoipa::path(get, operation_id = "get_profile", path = "/v1/workloads/{workload}/profile", tag = "profiles",
    params(("workload" = String, Path, description = "Workload id, percent-encoded as one segment"), Select),
    responses((status = 200, description = "The profile", body = serde_json::Value),
              (status = 404, description = "No such workload or revision")))]
pub async fn show(
    axum::extract::State(agent): AgentRef,
    Extension(cache): Extension<ResponseCache>,
    accept: AcceptEncoding,
    uri: axum::http::Uri,
    Path(workload): Path<String>,
    Query(sel): Query<Select>,
) -> Result<Response, ApiError> {
    let version = agent.versions().map(|v| Versions::read(&v.profiles));
    cache.serve(&uri.to_string(), version, accept, || {
        let (key, p) = load(agent.as_ref(), &workload, sel.revision.as_deref())?;
        cache::json(&ProfileView {
            summary: RevisionSummary::of(&key.revision, &p, agent.now_ns(), &agent.settings()),
            workload: key.workload,
            revision: key.revision,
            learning: p.learning,
            profile: p.profile,
        })
    })
}

/// The audit export of a workload's profile (JSON or YAML) with its SHA-256 content hash.
#[utoipa::path(get, operation_id = "export_profile", path = "/v1/workloads/{workload}/export", tag = "profiles",
    params(("workload" = String, Path, description = "Workload id, percent-encoded as one segment"), Select),
    responses((status = 200, description = "The export", body = serde_json::Value),
              (status = 400, description = "Unknown format"),
              (status = 404, description = "No such workload or revision")))]
/// `GET /v1/workloads/{workload}/export[?revision=&format=json|yaml]`: the audit export with
/// its SHA-256 content hash.
pub async fn export(
    axum::extract::State(agent): AgentRef,
    Path(workload): Path<String>,
    Query(sel): Query<Select>,
) -> Result<Response, ApiError> {
    let yaml = match sel.format.as_deref() {
        None | Some("json") => false,
        Some("yaml") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown export format {other:?}: expected json or yaml"
            )));
        }
    };
    let (key, p) = load(agent.as_ref(), &workload, sel.revision.as_deref())?;
    let e = export_of(agent.as_ref(), &key, &p)?;
    Ok(if yaml {
        let text = profiles::export::to_yaml(&e).map_err(|e| ApiError::internal(e.to_string()))?;
        ([(header::CONTENT_TYPE, "application/yaml")], text).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            profiles::export::to_json(&e),
        )
            .into_response()
    })
}

/// The audit export of a stored profile: entries, learning state, windows of activity and the
/// workload's approvals, with its content hash.
pub fn export_of(
    agent: &dyn crate::Agent,
    key: &ProfileKey,
    p: &StoredProfile,
) -> Result<profiles::export::ProfileExport, ApiError> {
    let learning =
        serde_json::to_value(&p.learning).map_err(|e| ApiError::internal(e.to_string()))?;
    let rates = agent.rate_samples(key)?;
    let approvals = agent.approvals(Some(&key.workload))?;
    Ok(
        profiles::export::export(&key.workload, &key.revision, learning, &p.profile)
            .with_rates(rates)
            .with_approvals(approvals),
    )
}

/// The answer to an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// Workload id.
    pub workload: String,
    /// Revision.
    pub revision: String,
    /// Entries stored.
    pub entries: usize,
}

/// Imports an export (JSON or YAML): checked (schema, content hash, entries) and stored,
/// replacing the profile with the same workload and revision; a rejected document changes
/// nothing. Audited under the caller's name.
#[utoipa::path(post, operation_id = "import_profile", path = "/v1/profiles/import", tag = "profiles",
    request_body(content = String, description = "An export, JSON or YAML", content_type = "application/json"),
    responses((status = 200, description = "What was stored", body = serde_json::Value),
              (status = 400, description = "The export is malformed, tampered with or invalid"),
              (status = 413, description = "The body is too large")))]
pub async fn import(
    axum::extract::State(agent): AgentRef,
    Caller(who): Caller,
    body: Bytes,
) -> Result<Json<Imported>, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the export is not UTF-8 text"))?;
    let e = profiles::export::import(text)
        .map_err(|e| ApiError::bad_request(format!("export rejected: {e}")))?;
    let key = ProfileKey::new(&e.workload, &e.revision)?;
    let learning = serde_json::from_value(e.learning.clone()).unwrap_or_else(|_| {
        let mut l = Learning::new(0);
        l.mark_incomplete("imported without learning state");
        l
    });
    let stored = StoredProfile {
        profile: e.profile,
        learning,
    };
    let entries = stored.profile.len();
    agent.import(&key, stored, e.rates)?;
    tracing::info!(workload = %key.workload, revision = %key.revision, entries, by = %who.name, "profile imported");
    agent.record_audit(AuditRecord::change(
        &who.name,
        &key.workload,
        "import",
        format!(
            "revision {} ({entries} entries, sha256 {})",
            key.revision, e.content_sha256
        ),
        agent.now_ns(),
    ))?;
    Ok(Json(Imported {
        workload: key.workload,
        revision: key.revision,
        entries,
    }))
}

/// The two revisions to compare.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffSelect {
    /// The older revision.
    from: String,
    /// The newer revision (default: the latest).
    to: Option<String>,
}

/// Entries added and removed between two revisions of a workload's profile.
#[utoipa::path(get, operation_id = "diff_profile", path = "/v1/workloads/{workload}/diff", tag = "profiles",
    params(("workload" = String, Path, description = "Workload id, percent-encoded as one segment"), DiffSelect),
    responses((status = 200, description = "`added` and `removed` entries", body = serde_json::Value),
              (status = 400, description = "`from` is missing"),
              (status = 404, description = "No such workload or revision")))]
pub async fn diff(
    axum::extract::State(agent): AgentRef,
    Path(workload): Path<String>,
    Query(sel): Query<DiffSelect>,
) -> Result<Json<profiles::diff::ProfileDiff>, ApiError> {
    let (_, old) = load(agent.as_ref(), &workload, Some(&sel.from))?;
    let (_, new) = load(agent.as_ref(), &workload, sel.to.as_deref())?;
    Ok(Json(profiles::diff::diff(&old.profile, &new.profile)))
}
