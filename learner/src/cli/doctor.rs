//! `baseliner doctor`.

use std::process::ExitCode;

use learner::doctor::{self, Status};

/// Options of `baseliner doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let checks = doctor::run();
    if args.json {
        let rows: Vec<_> = checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.name,
                    "status": match c.status { Status::Pass => "pass", Status::Fail => "fail", Status::Info => "info" },
                    "detail": c.detail,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Pass => "ok  ",
                Status::Fail => "FAIL",
                Status::Info => "info",
            };
            println!("[{mark}] {:<32} {}", c.name, c.detail);
        }
    }
    let pass = doctor::all_pass(&checks);
    if !args.json {
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        println!();
        println!(
            "{}",
            if pass {
                "all checks passed: this host can run the agent".to_string()
            } else {
                format!("{failed} check(s) failed")
            }
        );
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
