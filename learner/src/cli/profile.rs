//! `baseliner profile list | show`: read the store (with no agent running).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use profiles::store::{ProfileKey, Store};

use super::run::DEFAULT_STORE;

/// `baseliner profile ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of the embedded store.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE, env = "BASELINER_STORE", global = true)]
    store: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One line per stored profile: workload, revision, entries.
    List,
    /// The entries of one workload's profile, as JSON.
    Show {
        /// Workload id (on a host, the cgroup path).
        workload: String,
        /// Revision (default: the only one, or an error naming them).
        #[arg(long)]
        revision: Option<String>,
    },
}

fn open(dir: &Path) -> anyhow::Result<Store> {
    if !dir.exists() {
        bail!(
            "no store at {}: run the agent (`baseliner run`) first, or pass --store",
            dir.display()
        );
    }
    Store::open(dir).with_context(|| {
        format!(
            "opening the store at {} (a running agent holds it; stop it first)",
            dir.display()
        )
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = open(&args.store)?;
    match args.command {
        Command::List => {
            for key in store.keys()? {
                let n = store.load(&key)?.map_or(0, |p| p.profile.len());
                println!("{}\t{}\t{n} entries", key.workload, key.revision);
            }
        }
        Command::Show { workload, revision } => {
            let revisions: Vec<String> = store
                .keys()?
                .into_iter()
                .filter(|k| k.workload == workload)
                .map(|k| k.revision)
                .collect();
            let revision = match (revision, revisions.as_slice()) {
                (Some(r), _) => r,
                (None, [only]) => only.clone(),
                (None, []) => bail!("no profile for workload {workload:?}"),
                (None, many) => bail!(
                    "workload {workload:?} has revisions {many:?}; choose one with --revision"
                ),
            };
            let key = ProfileKey::new(&workload, &revision)?;
            let stored = store
                .load(&key)?
                .with_context(|| format!("no profile for {workload:?} revision {revision:?}"))?;
            let out = serde_json::json!({
                "workload": workload,
                "revision": revision,
                "learning": stored.learning,
                "profile": stored.profile,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
