//! The routes, one module per resource. Each handler carries its OpenAPI description
//! (`#[utoipa::path]`); the router and the OpenAPI document are built from the same lists, one
//! per [`Role`], so the document states exactly the role each route enforces.

pub mod alerts;
pub mod events;
pub mod health;
pub mod netpol;
pub mod profiles;
pub mod reports;
pub mod reviews;
pub mod status;
pub mod workloads;

use std::sync::Arc;

use axum::{Router, middleware::from_fn};
use utoipa::openapi::{
    OpenApi,
    security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Agent, ApiError, auth::Role};

/// The state every handler gets.
type AgentRef = axum::extract::State<Arc<dyn Agent>>;

/// The name of the bearer-token security scheme in the OpenAPI document.
pub const BEARER: &str = "bearer";

/// Routes any caller with a token may use (read-only).
fn viewer() -> OpenApiRouter<Arc<dyn Agent>> {
    OpenApiRouter::new()
        .routes(routes!(status::get))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::stream))
        .routes(routes!(alerts::audit))
        .routes(routes!(workloads::modes))
        .routes(routes!(workloads::list))
        .routes(routes!(workloads::show))
        .routes(routes!(workloads::mode_history))
        .routes(routes!(profiles::show))
        .routes(routes!(profiles::export))
        .routes(routes!(profiles::diff))
        .routes(routes!(profiles::list))
        .routes(routes!(reviews::list))
        .routes(routes!(reviews::show))
        .routes(routes!(reviews::approvals))
        .routes(routes!(reports::audit))
        .routes(routes!(reports::pci))
        .routes(routes!(events::list))
        .routes(routes!(netpol::generate))
        .routes(routes!(netpol::check))
        .routes(routes!(health::metrics))
}

/// Routes that decide: approve and reject proposals, acknowledge alerts.
fn reviewer() -> OpenApiRouter<Arc<dyn Agent>> {
    OpenApiRouter::new()
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(reviews::approve))
        .routes(routes!(reviews::reject))
        .routes(routes!(reviews::bulk))
}

/// Routes that change how the agent works: modes, imports.
fn admin() -> OpenApiRouter<Arc<dyn Agent>> {
    OpenApiRouter::new()
        .routes(routes!(workloads::set_mode))
        .routes(routes!(profiles::import))
}

/// Routes anyone may call: health probes and the OpenAPI document.
fn open() -> OpenApiRouter<Arc<dyn Agent>> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}

/// Every route and the OpenAPI document describing them.
pub fn router() -> (Router<Arc<dyn Agent>>, OpenApi) {
    let mut doc = base_doc();
    let mut router = Router::new();
    let groups = [
        (viewer(), Some(Role::Viewer)),
        (reviewer(), Some(Role::Reviewer)),
        (admin(), Some(Role::Admin)),
        (open(), None),
    ];
    for (group, role) in groups {
        let (r, mut d) = group.split_for_parts();
        let r = match role {
            Some(role) => {
                secure(&mut d, role);
                r.route_layer(from_fn(move |req, next| {
                    crate::auth::require(role, req, next)
                }))
            }
            None => r,
        };
        doc.merge(d);
        router = router.merge(r);
    }
    doc.paths.paths.insert(
        health::OPENAPI_PATH.to_string(),
        health::openapi_path_item(),
    );
    // Serialised once: the route (and so its body) is cloned for every connection, and a
    // reference-counted body costs nothing to clone.
    let served = axum::body::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let router = router
        .route(
            health::OPENAPI_PATH,
            axum::routing::get(move || {
                let body = served.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!("no route {}", uri.path()))
        });
    (router, doc)
}

/// The document's info and its bearer-token scheme.
fn base_doc() -> OpenApi {
    let mut doc = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Baseliner API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Workloads, modes, profiles, the review queue, alerts, evidence, reports and \
                     metrics of a Baseliner agent. Over TCP every call but the health probes \
                     needs `Authorization: Bearer <token>`; each operation's security \
                     requirement names the least role it needs (viewer < reviewer < admin). \
                     Errors are `application/problem+json` (RFC 9457).",
                ))
                .build(),
        )
        .build();
    let scheme = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(BEARER, scheme);
    doc
}

/// Marks every operation of `doc` as needing `role` (an OpenAPI 3.1 role name in the bearer
/// requirement).
fn secure(doc: &mut OpenApi, role: Role) {
    let req = SecurityRequirement::new(BEARER, [role.as_str()]);
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            op.security = Some(vec![req.clone()]);
        }
    }
}

/// The operations of a path item.
pub fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// 400 when a query's period ends before it starts (either end may be open).
fn check_period(since: Option<u64>, until: Option<u64>) -> Result<(), ApiError> {
    match (since, until) {
        (Some(s), Some(u)) if s > u => Err(ApiError::bad_request(format!(
            "since ({s}) is after until ({u})"
        ))),
        _ => Ok(()),
    }
}

/// [`json_body`], or the default when the body is empty (every field optional).
fn json_body_or_default<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        json_body(body)
    }
}

/// Parses a JSON object body with an error that says what is wrong (an array, which serde
/// would read field by field, is refused too).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("request body is not valid: {e}"))
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(&e))?;
    if !value.is_object() {
        return Err(bad(&"expected a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| bad(&e))
}
