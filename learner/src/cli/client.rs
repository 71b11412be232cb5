//! How client commands reach the API: the running agent's socket, or, with no agent running,
//! the same router in this process over the store.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, bail};
use api::client::Client;
use learner::{
    config::{Config, DEFAULT_CONFIG},
    control::Control,
    recorder::Recorder,
};
use profiles::{evidence::EvidenceStore, redact::Redactor, store::Store};

use super::run::{DEFAULT_STORE, socket_path};

/// Where the agent and its store are.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Directory of the embedded store (read directly when no agent runs).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE, env = "BASELINER_STORE", global = true)]
    pub store: PathBuf,
    /// The agent's API socket (default: api.sock in the store directory).
    #[arg(long, value_name = "PATH", env = "BASELINER_SOCKET", global = true)]
    pub socket: Option<PathBuf>,
}

impl Target {
    /// A client of the running agent, or of the store when no agent answers.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let socket = socket_path(&self.store, self.socket.as_deref());
        if let Some(c) = Client::agent(&socket).await {
            return Ok(c);
        }
        let store = open_store(&self.store, &socket)?;
        let config = Config::load(Path::new(DEFAULT_CONFIG), false)?;
        let evidence = EvidenceStore::open(&store, config.evidence.retention())
            .context("opening the evidence store")?;
        let recorder = Recorder::with_settings(store, Redactor::default(), config.learn.settings());
        let control = Control::new(Arc::new(Mutex::new(recorder)), None)
            .with_evidence(Arc::new(Mutex::new(evidence)), config.evidence.pci_paths);
        Ok(Client::Local(api::app(Arc::new(control))))
    }
}

fn open_store(dir: &Path, socket: &Path) -> anyhow::Result<Store> {
    if !dir.exists() {
        bail!(
            "no store at {}: run the agent (`baseliner run`) first, or pass --store",
            dir.display()
        );
    }
    // An agent that is stopping releases the store within a second or two.
    Store::open_waiting(dir, std::time::Duration::from_secs(3)).with_context(|| {
        format!(
            "opening the store at {} (no agent answers on {}, yet the store is held: \
             is an agent starting or stopping?)",
            dir.display(),
            socket.display()
        )
    })
}

/// Runs a client command to completion.
pub fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
