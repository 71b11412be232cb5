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
    /// Export a profile for audit: JSON (default) or YAML with a SHA-256 content hash.
    Export {
        /// Workload id.
        workload: String,
        /// Revision (default: the only one).
        #[arg(long)]
        revision: Option<String>,
        /// Write YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
    /// Check an exported file (schema, content hash, entries) and store its profile.
    Import {
        /// The exported file (JSON or YAML).
        file: PathBuf,
    },
    /// Entries added and removed between two exported files.
    Diff {
        /// The older export.
        old: PathBuf,
        /// The newer export.
        new: PathBuf,
    },
}

fn read_export(path: &Path) -> anyhow::Result<profiles::export::ProfileExport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    profiles::export::import(&text).with_context(|| format!("{} was not accepted", path.display()))
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

/// The revision to use: the one given, or the workload's only one.
fn pick_revision(
    store: &Store,
    workload: &str,
    revision: Option<String>,
) -> anyhow::Result<String> {
    let revisions: Vec<String> = store
        .keys()?
        .into_iter()
        .filter(|k| k.workload == workload)
        .map(|k| k.revision)
        .collect();
    Ok(match (revision, revisions.as_slice()) {
        (Some(r), _) => r,
        (None, [only]) => only.clone(),
        (None, []) => bail!("no profile for workload {workload:?}"),
        (None, many) => {
            bail!("workload {workload:?} has revisions {many:?}; choose one with --revision")
        }
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Diffing two files needs no store (and works while the agent holds it).
    let store = || open(&args.store);
    match args.command {
        Command::Diff { old, new } => {
            let (old, new) = (read_export(&old)?, read_export(&new)?);
            let d = profiles::diff::diff(&old.profile, &new.profile);
            if !d.is_empty() {
                println!("{d}");
            }
        }
        Command::Export {
            workload,
            revision,
            yaml,
        } => {
            let store = store()?;
            let revision = pick_revision(&store, &workload, revision)?;
            let key = ProfileKey::new(&workload, &revision)?;
            let stored = store
                .load(&key)?
                .with_context(|| format!("no profile for {workload:?}"))?;
            let learning = serde_json::to_value(&stored.learning)?;
            let e = profiles::export::export(workload, revision, learning, &stored.profile);
            if yaml {
                print!("{}", profiles::export::to_yaml(&e)?);
            } else {
                print!("{}", profiles::export::to_json(&e));
            }
        }
        Command::Import { file } => {
            let store = store()?;
            let e = read_export(&file)?;
            let key = ProfileKey::new(&e.workload, &e.revision)?;
            let learning = serde_json::from_value(e.learning.clone()).unwrap_or_else(|_| {
                let mut l = profiles::learning::Learning::new(0);
                l.mark_incomplete("imported without learning state");
                l
            });
            let stored = profiles::store::StoredProfile {
                profile: e.profile,
                learning,
            };
            store.save_batch([(&key, &stored)])?;
            store.flush()?;
            println!(
                "imported {} ({} entries) as {}/{}",
                file.display(),
                stored.profile.len(),
                key.workload,
                key.revision
            );
        }
        Command::List => {
            let store = store()?;
            for key in store.keys()? {
                let n = store.load(&key)?.map_or(0, |p| p.profile.len());
                println!("{}\t{}\t{n} entries", key.workload, key.revision);
            }
        }
        Command::Show { workload, revision } => {
            let store = store()?;
            let revision = pick_revision(&store, &workload, revision)?;
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
