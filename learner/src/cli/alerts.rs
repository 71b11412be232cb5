//! `baseliner alerts`: stored alerts, and `baseliner audit`: the actions taken because of them;
//! through the running agent when there is one.

use std::process::ExitCode;

use scorer::alert::Alert;

use super::client::{Target, block_on};

/// Options of `baseliner alerts`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Only this workload's alerts.
    #[arg(long)]
    workload: Option<String>,
    /// The lowest severity to list: info, low, medium, high or critical.
    #[arg(long)]
    severity: Option<String>,
    /// At most this many, the most recent first.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `baseliner audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    target: Target,
    /// Only this workload's actions.
    #[arg(long)]
    workload: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `baseliner audit`: the audit log, oldest first.
pub fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let query = args.workload.as_ref().map_or(String::new(), |w| {
        format!("?workload={}", api::workload_segment(w))
    });
    block_on(async {
        let client = args.target.connect().await?;
        let records: Vec<api::AuditRecord> = client.get(&format!("/v1/audit{query}")).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&records)?);
            return Ok(ExitCode::SUCCESS);
        }
        if records.is_empty() {
            println!("no actions");
        }
        for r in &records {
            let a = &r.action;
            let cause = if r.alert_key.is_empty() {
                String::new()
            } else {
                format!(" (alert {}: {})", r.alert_key, r.alert_summary)
            };
            println!(
                "{} {} {} {} on {}: {}{cause}",
                when(a.at_ns),
                r.actor,
                a.action,
                r.workload,
                a.target,
                a.outcome,
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn when(ns: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
        .to_string()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(w) = &args.workload {
        query.push(format!("workload={}", api::workload_segment(w)));
    }
    if let Some(s) = &args.severity {
        query.push(format!("severity={}", api::workload_segment(s)));
    }
    block_on(async {
        let client = args.target.connect().await?;
        let alerts: Vec<Alert> = client
            .get(&format!("/v1/alerts?{}", query.join("&")))
            .await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&alerts)?);
            return Ok(ExitCode::SUCCESS);
        }
        if alerts.is_empty() {
            println!("no alerts");
        }
        for a in &alerts {
            println!(
                "{} {:8} {} ×{} (first {}) {}",
                when(a.last_ns),
                a.severity.as_str(),
                a.workload,
                a.count,
                when(a.first_ns),
                a.summary
            );
            for r in &a.reasons {
                println!("    [{}] {}", r.rule, r.text);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
