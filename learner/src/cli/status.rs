//! `baseliner status`: the agent, its kernel statistics, and each workload's mode and learning
//! progress.

use std::{fmt::Write as _, process::ExitCode, time::Duration};

use api::summary::{ModeSource, RevisionSummary, StatusReport};
use profiles::learning::Status;

use super::client::{Target, block_on};

/// Options of `baseliner status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Seconds from `ns` (Unix-epoch nanoseconds) to now.
fn now_secs(ns: u64) -> u64 {
    learner::recorder::now_ns().saturating_sub(ns) / 1_000_000_000
}

fn ago(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// The STATUS column: what the profile is doing, in words.
fn progress(r: &RevisionSummary, stable_after: u64) -> String {
    match r.status {
        Status::Stable => format!("stable for {}", ago(r.stable_for_secs)),
        Status::Learning => format!(
            "learning: no new entry for {} of {} ({:.0}%)",
            ago(r.stable_for_secs),
            ago(stable_after),
            r.progress * 100.0
        ),
        Status::Incomplete => format!("incomplete; no new entry for {}", ago(r.stable_for_secs)),
    }
}

/// The report as text.
pub fn render(s: &StatusReport) -> String {
    let mut out = String::new();
    match &s.agent {
        Some(a) => {
            let up = learner::recorder::now_ns().saturating_sub(a.started_ns) / 1_000_000_000;
            let _ = writeln!(
                out,
                "agent: running (pid {}, up {}), store {}",
                a.pid,
                ago(up),
                a.store
            );
            let _ = writeln!(
                out,
                "recorded {} events ({} secrets redacted, {} not recorded)",
                a.recorded, a.redactions, a.not_recorded
            );
            let c = &a.alerts;
            let _ = writeln!(
                out,
                "scored {} events: {} alerts raised, {} repeats; delivery: {} delivered, {} failed \
                 attempts, {} pending",
                c.scored, c.raised, c.repeats, c.delivered, c.failed, c.pending
            );
            let e = &a.enforcement;
            let canary = match &e.canary {
                None => "not run".to_string(),
                Some(c) if c.ok => format!("passed {} ago", ago(now_secs(c.at_ns))),
                Some(c) => format!("FAILED {} ago: {}", ago(now_secs(c.at_ns)), c.detail),
            };
            let _ = writeln!(
                out,
                "enforcement: {} workloads enforcing; kernel killed {} execs, refused {} connects; \
                 canary {canary}",
                e.workloads
                    .iter()
                    .filter(|w| w.state == "enforcing")
                    .count(),
                e.kernel.exec_killed,
                e.kernel.connect_denied
            );
            let t = &a.kernel["total"];
            if t.is_object() {
                let _ = writeln!(
                    out,
                    "kernel: seen {} emitted {} deduplicated {} dropped {}",
                    t["seen"], t["emitted"], t["deduplicated"], t["dropped"]
                );
            }
        }
        None => {
            let _ = writeln!(out, "agent: not running (read from the store)");
        }
    }
    let st = &s.settings;
    let _ = writeln!(
        out,
        "default mode {}; stable after {}; automatic switch to alert: {}",
        st.default_mode,
        ago(st.stable_after.as_secs()),
        st.auto_alert_after
            .map_or("off".to_string(), |d| format!("after {}", ago(d.as_secs())))
    );
    if s.workloads.is_empty() {
        let _ = writeln!(out, "no workloads yet");
        return out;
    }
    let width = s
        .workloads
        .iter()
        .map(|w| w.workload.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "\n{:width$}  {:8}  {:12}  {:>7}  STATUS",
        "WORKLOAD", "MODE", "REVISION", "ENTRIES"
    );
    for w in &s.workloads {
        let mode = match w.mode_source {
            ModeSource::Set => w.mode.to_string(),
            ModeSource::Default => format!("{}*", w.mode),
            ModeSource::Annotation => format!("{}@", w.mode),
        };
        if w.revisions.is_empty() {
            let _ = writeln!(
                out,
                "{:width$}  {mode:8}  {:12}  {:>7}  no profile",
                w.workload, "-", 0
            );
        }
        for r in &w.revisions {
            let _ = writeln!(
                out,
                "{:width$}  {mode:8}  {:12}  {:>7}  {}",
                w.workload,
                r.revision,
                r.entries.total,
                progress(r, st.stable_after.as_secs())
            );
            for why in &r.incomplete {
                let _ = writeln!(out, "{:width$}    incomplete: {why}", "");
            }
        }
    }
    let _ = writeln!(out, "(* the agent's default mode)");
    if s.workloads
        .iter()
        .any(|w| w.mode_source == ModeSource::Annotation)
    {
        let _ = writeln!(out, "(@ set by a baseliner.io/mode annotation)");
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = args.target.connect().await?;
        let report: StatusReport = client.get("/v1/status").await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", render(&report));
        }
        Ok(ExitCode::SUCCESS)
    })
}
