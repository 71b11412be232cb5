//! Calling the API: over the running agent's unix socket, or in process over a router built on
//! the store when no agent runs. Both give the same answers.

use std::path::{Path, PathBuf};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use crate::{ApiError, error::Problem};

/// HTTP methods, for [`Client::call`] and [`Client::send`].
pub use axum::http::Method;

/// A call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// Talking to the agent failed.
    #[error("talking to the agent at {path}: {message}")]
    Transport {
        /// The socket.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The answer was not what the API sends.
    #[error("unexpected answer from the API: {0}")]
    Decode(String),
}

/// How calls reach the API.
pub enum Client {
    /// The running agent, over its socket.
    Agent(PathBuf),
    /// A router in this process (no agent running).
    Local(Router),
}

impl Client {
    /// The agent listening on `socket`, if one answers there.
    pub async fn agent(socket: &Path) -> Option<Client> {
        tokio::net::UnixStream::connect(socket)
            .await
            .ok()
            .map(|_| Client::Agent(socket.to_path_buf()))
    }

    /// True when calls go to a running agent.
    pub fn is_agent(&self) -> bool {
        matches!(self, Client::Agent(_))
    }

    /// Sends one request; returns the status and body of a success, or the API's error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let (status, bytes) = match self {
            Client::Local(router) => {
                let resp = router
                    .clone()
                    .oneshot(req)
                    .await
                    .map_err(|e| ClientError::Decode(e.to_string()))?;
                let status = resp.status();
                let bytes = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| ClientError::Decode(e.to_string()))?
                    .to_bytes();
                (status, bytes)
            }
            Client::Agent(socket) => send_unix(socket, req).await?,
        };
        if status.is_success() {
            return Ok(bytes);
        }
        let detail = serde_json::from_slice::<Problem>(&bytes)
            .map(|p| p.detail)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        Err(ApiError::new(status, detail).into())
    }

    /// A GET whose JSON answer is decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        decode(&self.call(Method::GET, path, None).await?)
    }

    /// A request with a JSON body whose JSON answer is decoded as `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        decode(&self.call(method, path, Some(body)).await?)
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()))
}

async fn send_unix(socket: &Path, req: Request<Body>) -> Result<(StatusCode, Bytes), ClientError> {
    let transport = |e: &dyn std::fmt::Display| ClientError::Transport {
        path: socket.to_path_buf(),
        message: e.to_string(),
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| transport(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| transport(&e))?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| transport(&e))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| transport(&e))?
        .to_bytes();
    Ok((status, bytes))
}
