//! `baseliner netpol`: a Kubernetes NetworkPolicy from a workload's profile, or the check of a
//! namespace's policies against the connections observed (through the running agent).

use std::process::ExitCode;

use api::{PolicyAnswer, PolicyCheck, workload_segment};

use super::client::{Target, block_on};

/// `baseliner netpol ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// The workload (k8s:<namespace>/<kind>/<name>/<container>) whose policy to print as YAML.
    #[arg(required_unless_present = "check", conflicts_with = "check")]
    workload: Option<String>,
    /// The pods the policy selects, `key=value,...` (default: the labels of the workload's
    /// pods on this node).
    #[arg(long, value_name = "LABELS")]
    selector: Option<String>,
    /// Instead: check the NetworkPolicies of this namespace against the connections its
    /// workloads made; exits 1 when a flow should have been denied.
    #[arg(long, value_name = "NAMESPACE")]
    check: Option<String>,
    /// Print JSON (with the notes).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = args.target.connect().await?;
        if let Some(ns) = &args.check {
            let path = format!("/v1/netpol/check?namespace={}", workload_segment(ns));
            let check: PolicyCheck = client.get(&path).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&check)?);
            } else {
                print!("{}", check.report);
            }
            return Ok(if check.denied.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        let workload = args.workload.unwrap_or_default();
        let mut path = format!("/v1/workloads/{}/netpol", workload_segment(&workload));
        if let Some(s) = &args.selector {
            path.push_str(&format!("?selector={}", workload_segment(s)));
        }
        let answer: PolicyAnswer = client.get(&path).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            for note in &answer.notes {
                println!("# {note}");
            }
            println!("# pods selected by {}", answer.selector_source);
            print!("{}", answer.yaml);
        }
        Ok(ExitCode::SUCCESS)
    })
}
