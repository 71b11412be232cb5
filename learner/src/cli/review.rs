//! `baseliner review list | show | approve | reject`: the review queue, through the running
//! agent when there is one (the same API calls a reviewer makes over HTTP).

use std::process::ExitCode;

use api::client::Method;
use profiles::review::{Approval, Proposal};

use super::{
    alerts::when,
    client::{Target, block_on},
};

/// `baseliner review ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Proposed allow-list entries: pending first, most recently seen first.
    List {
        /// Only this workload's.
        #[arg(long)]
        workload: Option<String>,
        /// Only those in this state: pending, approved or rejected.
        #[arg(long)]
        state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One proposal with its example events and alerts (JSON).
    Show {
        /// The proposal's id.
        id: String,
    },
    /// Approve proposals: their entries join the profiles at once.
    Approve {
        /// The proposals' ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Why.
        #[arg(long, short, default_value = "")]
        comment: String,
        /// Approve as this broader pattern (one id only): a directory glob such as
        /// /opt/app/bin/*, or a CIDR with an optional port such as 10.0.0.0/8:443.
        #[arg(long)]
        pattern: Option<String>,
    },
    /// Reject proposals: they keep alerting (and are blocked in enforce mode).
    Reject {
        /// The proposals' ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Why.
        #[arg(long, short, default_value = "")]
        comment: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = args.target.connect().await?;
        match args.command {
            Command::List {
                workload,
                state,
                json,
            } => {
                let mut query = Vec::new();
                if let Some(w) = &workload {
                    query.push(format!("workload={}", api::workload_segment(w)));
                }
                if let Some(s) = &state {
                    query.push(format!("state={}", api::workload_segment(s)));
                }
                let list: Vec<Proposal> = client
                    .get(&format!("/v1/reviews?{}", query.join("&")))
                    .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else if list.is_empty() {
                    println!("no proposals");
                } else {
                    println!(
                        "{:16}  {:8}  {:>6}  {:20}  WORKLOAD / ENTRY",
                        "ID", "STATE", "SEEN", "LAST"
                    );
                    for p in &list {
                        println!(
                            "{:16}  {:8}  {:>6}  {:20}  {}\n{:58}{}",
                            p.id,
                            p.state.as_str(),
                            p.count,
                            when(p.last_ns),
                            p.workload,
                            "",
                            p.entry
                        );
                    }
                }
            }
            Command::Show { id } => {
                let p: Proposal = client
                    .get(&format!("/v1/reviews/{}", api::workload_segment(&id)))
                    .await?;
                println!("{}", serde_json::to_string_pretty(&p)?);
            }
            Command::Approve {
                ids,
                comment,
                pattern,
            } => {
                if pattern.is_some() && ids.len() != 1 {
                    anyhow::bail!("--pattern approves one proposal at a time");
                }
                for id in ids {
                    let body = serde_json::json!({ "comment": comment, "pattern": pattern });
                    let path = format!("/v1/reviews/{}/approve", api::workload_segment(&id));
                    let a: Approval = client.send(Method::POST, &path, &body).await?;
                    println!("{id}: approved {} for {}", a.entry, a.workload);
                }
            }
            Command::Reject { ids, comment } => {
                for id in ids {
                    let body = serde_json::json!({ "comment": comment });
                    let path = format!("/v1/reviews/{}/reject", api::workload_segment(&id));
                    let p: Proposal = client.send(Method::POST, &path, &body).await?;
                    println!("{id}: rejected {} for {}", p.entry, p.workload);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
