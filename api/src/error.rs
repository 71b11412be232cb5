//! API errors, sent as RFC 9457 problem details (`application/problem+json`).

use axum::{
    extract::Request,
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use profiles::store::StoreError;
use serde::{Deserialize, Serialize};

/// An error answer: an HTTP status and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, in words.
    pub detail: String,
}

/// The body of an error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Problem {
    /// Always `about:blank`: the status says the class of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong, in words.
    pub detail: String,
}

impl ApiError {
    /// An error with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    /// 400: the request is wrong.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404: no such thing.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the request conflicts with the current state (decided already).
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 500: the agent failed.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidName { .. } => ApiError::bad_request(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<profiles::review::ReviewError> for ApiError {
    fn from(e: profiles::review::ReviewError) -> Self {
        use profiles::review::ReviewError as R;
        let status = match &e {
            R::NotFound { .. } => StatusCode::NOT_FOUND,
            R::AlreadyDecided { .. } => StatusCode::CONFLICT,
            R::InvalidPattern { .. } | R::Invalid { .. } => StatusCode::BAD_REQUEST,
            R::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank".into(),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

/// Middleware that turns the error answers axum makes itself (a method a route does not take, a
/// body over the limit, an undecodable path) into problems, so every error is
/// `application/problem+json`.
pub(crate) async fn problems(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = next.run(req).await;
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/problem+json");
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let detail = if status == StatusCode::METHOD_NOT_ALLOWED {
        // axum adds the Allow header after this middleware.
        format!("{method} is not allowed on {path}")
    } else {
        let body = axum::body::to_bytes(resp.into_body(), 64 << 10).await;
        let text = String::from_utf8_lossy(&body.unwrap_or_default())
            .trim()
            .to_string();
        if text.is_empty() {
            format!("{method} {path}: {status}")
        } else {
            text
        }
    };
    ApiError::new(status, detail).into_response()
}
