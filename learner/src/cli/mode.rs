//! `baseliner mode set | list`: workload modes, through the running agent when there is one.

use std::process::ExitCode;

use api::{ModeEntry, client::Method, summary::ModeChange, workload_segment};

use super::client::{Target, block_on};

/// `baseliner mode ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Set a workload's mode: learn, alert, dry-run or enforce. A running agent applies it at once.
    Set {
        /// Workload id (on a host, the cgroup path, e.g. /system.slice/nginx.service).
        workload: String,
        /// learn | alert | enforce
        mode: String,
    },
    /// Every known workload's mode and where it comes from (set, or the agent's default).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = args.target.connect().await?;
        match args.command {
            Command::Set { workload, mode } => {
                let path = format!("/v1/workloads/{}/mode", workload_segment(&workload));
                let change: ModeChange = client
                    .send(Method::PUT, &path, &serde_json::json!({ "mode": mode }))
                    .await?;
                let before = change
                    .previous
                    .map_or("default".to_string(), |m| m.to_string());
                let applied = if client.is_agent() {
                    "applied by the running agent"
                } else {
                    "stored; the agent applies it when it starts"
                };
                println!(
                    "{}: {before} -> {} ({applied})",
                    change.workload, change.mode
                );
            }
            Command::List { json } => {
                let modes: Vec<ModeEntry> = client.get("/v1/modes").await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&modes)?);
                } else {
                    let width = modes.iter().map(|m| m.workload.len()).max().unwrap_or(8);
                    println!("{:width$}  {:7}  SOURCE", "WORKLOAD", "MODE");
                    for m in modes {
                        let source = serde_json::to_value(m.source)?;
                        println!(
                            "{:width$}  {:7}  {}",
                            m.workload,
                            m.mode.as_str(),
                            source.as_str().unwrap_or("")
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
