//! Who calls, and what they may do. Over TCP every request carries a bearer token; the
//! configuration keeps only each token's SHA-256, with a name and a [`Role`]. The unix socket is
//! root's own, so calls over it act as [`Identity::local`] (admin). Every change an API call
//! makes is audited under the caller's name.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ApiError;

/// What a caller may do; each role may do everything the ones before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    #[default]
    Viewer,
    /// Also approve and reject review proposals, acknowledge alerts.
    Reviewer,
    /// Also set modes, import profiles and read the configuration.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Reviewer, Role::Admin];

    /// The role's name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected viewer, reviewer or admin"))
    }
}

/// One API token as configured: its name, role and the SHA-256 of the token (hex).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it; recorded in the audit log for every change made with it.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Lower-case hex SHA-256 of the token (`baseliner token` prints it).
    pub sha256: String,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl TokenConfig {
    /// Checks the entry: a name, and a SHA-256 of 64 hex digits.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("an API token has an empty name".into());
        }
        let ok = self.sha256.len() == 64 && self.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(format!(
                "API token {:?}: sha256 must be 64 hex digits (the SHA-256 of the token; \
                 `baseliner token --name NAME --role ROLE` makes one)",
                self.name
            ));
        }
        Ok(())
    }
}

/// The SHA-256 of a token, lower-case hex: what the configuration stores.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (32 bytes from the kernel's generator, hex), prefixed `bl_`.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))?;
    Ok(format!("bl_{}", hex::encode(bytes)))
}

/// The caller of a request, put in its extensions by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's name (or `root` over the unix socket).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

impl Identity {
    /// Root over the agent's unix socket (or the CLI reading the store itself).
    pub fn local() -> Identity {
        Identity {
            name: "root".into(),
            role: Role::Admin,
        }
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Every request is this caller (the root-only unix socket, the CLI in process).
    Trusted(Identity),
    /// Each request must carry one of these tokens (TCP).
    Tokens(Arc<Vec<TokenConfig>>),
}

impl Auth {
    /// The caller named by the request's headers.
    fn identify(&self, req: &Request) -> Result<Identity, ApiError> {
        let tokens = match self {
            Auth::Trusted(id) => return Ok(id.clone()),
            Auth::Tokens(t) => t,
        };
        let header = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
            unauthorized("this API needs a bearer token (Authorization: Bearer …)")
        })?;
        // The scheme is case-insensitive (RFC 9110, section 11.1).
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?;
        let digest = Sha256::digest(token.as_bytes());
        // Compare every configured hash in full, whatever matches, so timing says nothing.
        let mut found = None;
        for t in tokens.iter() {
            let mut want = [0u8; 32];
            if hex::decode_to_slice(&t.sha256, &mut want).is_ok() && equal(&want, &digest) {
                found = Some(t);
            }
        }
        let t = found.ok_or_else(|| unauthorized("the bearer token is not valid"))?;
        Ok(Identity {
            name: t.name.clone(),
            role: t.role,
        })
    }
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, detail)
}

/// Middleware: identifies the caller (401 when it cannot) and puts its [`Identity`] in the
/// request's extensions. Health probes pass without a token.
pub async fn authenticate(
    State(auth): State<Auth>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if crate::routes::health::is_probe(req.uri().path()) {
        return Ok(next.run(req).await);
    }
    let id = auth.identify(&req)?;
    req.extensions_mut().insert(id);
    Ok(next.run(req).await)
}

/// Middleware: 403 unless the caller (from [`authenticate`]) has at least `role`.
pub async fn require(role: Role, req: Request, next: Next) -> Result<Response, ApiError> {
    let id = req
        .extensions()
        .get::<Identity>()
        .ok_or_else(|| unauthorized("the caller is not identified"))?;
    if id.role < role {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!(
                "{} has the role {}; this call needs {role} or above",
                id.name, id.role
            ),
        ));
    }
    Ok(next.run(req).await)
}

/// The caller of a request, for handlers that record who made a change.
#[derive(Debug, Clone)]
pub struct Caller(pub Identity);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Caller, ApiError> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| unauthorized("the caller is not identified"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Viewer < Role::Reviewer && Role::Reviewer < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().unwrap_err().contains("unknown role"));
    }

    #[test]
    fn token_config_is_validated_and_never_shows_its_hash() {
        let ok = TokenConfig {
            name: "ci".into(),
            role: Role::Viewer,
            sha256: token_sha256("secret"),
        };
        assert!(ok.validate().is_ok());
        assert!(!format!("{ok:?}").contains(&ok.sha256));
        let bad = TokenConfig {
            sha256: "abc".into(),
            ..ok.clone()
        };
        assert!(bad.validate().unwrap_err().contains("64 hex digits"));
        let unnamed = TokenConfig {
            name: " ".into(),
            ..ok
        };
        assert!(unnamed.validate().is_err());
    }

    #[test]
    fn new_tokens_differ_and_hash_to_64_hex_digits() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("bl_") && a.len() == 67);
        assert_eq!(token_sha256(&a).len(), 64);
    }
}
