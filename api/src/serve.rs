//! Serving the API on a unix socket that only root (the socket's owner) may use.

use std::{
    future::Future,
    io,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
};

use axum::Router;
use tokio::net::UnixListener;

/// The socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another process already answers on the socket.
    #[error("another agent is serving on {0} (stop it first)")]
    InUse(PathBuf),
    /// Binding or securing the socket failed.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A bound API socket; removed from the file system when dropped.
pub struct ApiSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
}

impl ApiSocket {
    /// Binds `path` with mode 0600. A stale socket left by a crashed agent is replaced; one that
    /// still answers is an error.
    pub async fn bind(path: &Path) -> Result<ApiSocket, ServeError> {
        let io_err = |source| ServeError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            // Never remove anything but a socket (the agent runs as root).
            if !meta.file_type().is_socket() {
                let e = io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "it exists and is not a socket",
                );
                return Err(io_err(e));
            }
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(ServeError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_err)?;
        }
        let listener = UnixListener::bind(path).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        Ok(ApiSocket {
            listener: Some(listener),
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves `app` until `shutdown` completes.
    pub async fn serve(
        mut self,
        app: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let listener = self
            .listener
            .take()
            .ok_or_else(|| io::Error::other("socket already served"))?;
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
