//! `baseliner profile list | show | export | import | diff`, through the running agent when
//! there is one, else over the store.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use api::{
    Imported, ProfileView,
    client::{Client, Method},
    summary::ProfileListing,
    workload_segment,
};
use profiles::export::ProfileExport;

use super::client::{Target, block_on};

/// `baseliner profile ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One line per profile: workload, revision, entries, learning status.
    List,
    /// The entries and learning state of one workload's profile, as JSON.
    Show {
        /// Workload id (on a host, the cgroup path).
        workload: String,
        /// Revision (default: the latest).
        #[arg(long)]
        revision: Option<String>,
    },
    /// Export a profile for audit: JSON (default) or YAML with a SHA-256 content hash.
    Export {
        /// Workload id.
        workload: String,
        /// Revision (default: the latest).
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
    /// Entries added and removed between two exported files, or two revisions of a workload.
    Diff {
        /// The older export (or, with --workload, the older revision).
        old: String,
        /// The newer export (or, with --workload, the newer revision).
        new: String,
        /// Compare two stored revisions of this workload instead of two files.
        #[arg(long)]
        workload: Option<String>,
    },
}

fn read_export(path: &Path) -> anyhow::Result<ProfileExport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    profiles::export::import(&text).with_context(|| format!("{} was not accepted", path.display()))
}

fn profile_path(workload: &str, what: &str, revision: Option<&str>, yaml: bool) -> String {
    let mut path = format!("/v1/workloads/{}/{what}", workload_segment(workload));
    let mut query = Vec::new();
    if let Some(r) = revision {
        query.push(format!("revision={}", workload_segment(r)));
    }
    if yaml {
        query.push("format=yaml".into());
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    path
}

async fn export(
    client: &Client,
    workload: &str,
    revision: Option<&str>,
    yaml: bool,
) -> anyhow::Result<String> {
    let bytes = client
        .call(
            Method::GET,
            &profile_path(workload, "export", revision, yaml),
            None,
        )
        .await?;
    Ok(String::from_utf8(bytes.to_vec())?)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Diffing two files needs neither the agent nor the store.
    if let Command::Diff {
        old,
        new,
        workload: None,
    } = &args.command
    {
        let (old, new) = (read_export(Path::new(old))?, read_export(Path::new(new))?);
        print_diff(&old, &new);
        return Ok(ExitCode::SUCCESS);
    }
    block_on(async {
        let client = args.target.connect().await?;
        match args.command {
            Command::Diff {
                old,
                new,
                workload: Some(w),
            } => {
                let text = |r| export(&client, &w, Some(r), false);
                let old = profiles::export::import(&text(&old).await?)?;
                let new = profiles::export::import(&text(&new).await?)?;
                print_diff(&old, &new);
            }
            Command::Diff { workload: None, .. } => unreachable!("handled above"),
            Command::Export {
                workload,
                revision,
                yaml,
            } => print!(
                "{}",
                export(&client, &workload, revision.as_deref(), yaml).await?
            ),
            Command::Import { file } => {
                let text =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let done: Imported = match client
                    .call(Method::POST, "/v1/profiles/import", Some(text))
                    .await
                {
                    Ok(bytes) => serde_json::from_slice(&bytes)?,
                    Err(e) => bail!("{} was not accepted: {e}", file.display()),
                };
                println!(
                    "imported {} ({} entries) as {}/{}",
                    file.display(),
                    done.entries,
                    done.workload,
                    done.revision
                );
            }
            Command::List => {
                let list: Vec<ProfileListing> = client.get("/v1/profiles").await?;
                for p in list {
                    let status = serde_json::to_value(p.summary.status)?;
                    println!(
                        "{}\t{}\t{} entries\t{}",
                        p.workload,
                        p.summary.revision,
                        p.summary.entries.total,
                        status.as_str().unwrap_or("")
                    );
                }
            }
            Command::Show { workload, revision } => {
                let view: ProfileView = client
                    .get(&profile_path(
                        &workload,
                        "profile",
                        revision.as_deref(),
                        false,
                    ))
                    .await?;
                println!("{}", serde_json::to_string_pretty(&view)?);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_diff(old: &ProfileExport, new: &ProfileExport) {
    let d = profiles::diff::diff(&old.profile, &new.profile);
    if !d.is_empty() {
        println!("{d}");
    }
}
