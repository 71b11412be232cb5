//! The unix-socket server and the client that talks to it.

mod common;

use std::{
    os::unix::fs::FileTypeExt as _, os::unix::fs::PermissionsExt as _, path::Path, sync::Arc,
};

use api::{
    client::{Client, ClientError},
    serve::{ApiSocket, ServeError},
    summary::{ModeChange, StatusReport},
    workload_segment,
};
use axum::http::{Method, StatusCode};
use common::*;
use profiles::mode::Mode;
use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle};

/// An agent serving `fake` on `path` until the returned sender fires.
async fn serve(
    path: &Path,
    fake: &Arc<Fake>,
) -> (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>) {
    let socket = ApiSocket::bind(path).await.expect("bind");
    assert_eq!(socket.path(), path);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(socket.serve(app(fake), async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

fn mode_bits(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn the_socket_is_private_and_answers_like_the_local_router() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let fake = Arc::new(Fake::new().with_runtime());
    let (stop, task) = serve(&path, &fake).await;

    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(mode_bits(&path), 0o600);

    let agent = Client::agent(&path).await.expect("an agent answers");
    assert!(agent.is_agent());
    let local = Client::Local(app(&fake));
    let remote: StatusReport = agent.get("/v1/status").await.unwrap();
    let here: StatusReport = local.get("/v1/status").await.unwrap();
    assert_eq!(remote, here);
    assert_eq!(remote.agent, fake.runtime);
    assert_eq!(remote.workloads.len(), 3);
    // Byte for byte, too.
    assert_eq!(
        agent.call(Method::GET, "/v1/profiles", None).await.unwrap(),
        local.call(Method::GET, "/v1/profiles", None).await.unwrap()
    );

    // A write through the socket reaches the agent.
    let path_mode = format!("/v1/workloads/{}/mode", workload_segment(NGINX));
    let change: ModeChange = agent
        .send(Method::PUT, &path_mode, &json!({"mode": "enforce"}))
        .await
        .unwrap();
    assert_eq!((change.mode, change.previous), (Mode::Enforce, None));
    assert_eq!(fake.modes.lock().unwrap().get(NGINX), Some(&Mode::Enforce));

    // Errors come back as API errors with the problem's detail.
    let err = agent
        .send::<ModeChange>(Method::PUT, &path_mode, &json!({"mode": "block"}))
        .await
        .unwrap_err();
    match &err {
        ClientError::Api(e) => {
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.detail
                    .contains("expected learn, alert, dry-run or enforce"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    let err = agent.get::<StatusReport>("/v1/nope").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api(e) if e.status == StatusCode::NOT_FOUND),
        "{err:?}"
    );

    // Several calls in a row (each on its own connection) all work.
    for _ in 0..5 {
        let _: StatusReport = agent.get("/v1/status").await.unwrap();
    }

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(!path.exists(), "the socket is removed on shutdown");
    assert!(Client::agent(&path).await.is_none());
    let err = agent.get::<StatusReport>("/v1/status").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Transport { path: p, .. } if p == &path),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_live_socket_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let fake = Arc::new(Fake::new());
    let (stop, task) = serve(&path, &fake).await;

    let err = ApiSocket::bind(&path).await.err().expect("in use");
    assert!(
        matches!(&err, ServeError::InUse(p) if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("another agent"), "{err}");
    // The first agent still serves.
    let agent = Client::agent(&path).await.unwrap();
    let _: StatusReport = agent.get("/v1/status").await.unwrap();

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    // A crashed agent's socket: the file is there, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert!(Client::agent(&path).await.is_none());

    let fake = Arc::new(Fake::new());
    let (stop, task) = serve(&path, &fake).await;
    assert_eq!(mode_bits(&path), 0o600);
    let agent = Client::agent(&path).await.expect("the new agent answers");
    let _: StatusReport = agent.get("/v1/status").await.unwrap();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn a_bound_socket_that_is_dropped_unserved_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let socket = ApiSocket::bind(&path).await.unwrap();
    assert!(path.exists());
    drop(socket);
    assert!(!path.exists());
    assert!(Client::agent(&path).await.is_none());
    // And the path can be bound again.
    drop(ApiSocket::bind(&path).await.unwrap());
}

#[tokio::test]
async fn a_socket_in_a_missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("api.sock");
    let err = ApiSocket::bind(&path).await.err().expect("no directory");
    assert!(
        matches!(&err, ServeError::Io { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {}", path.display())),
        "{err}"
    );
    assert!(Client::agent(&path).await.is_none());
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    std::fs::write(&path, "precious").unwrap();
    let err = ApiSocket::bind(&path).await.err().expect("not a socket");
    assert!(
        matches!(&err, ServeError::Io { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");

    // Nor is a symlink followed.
    let target = dir.path().join("target");
    std::fs::write(&target, "also precious").unwrap();
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(ApiSocket::bind(&link).await.is_err());
    assert_eq!(std::fs::read_to_string(&link).unwrap(), "also precious");
}
