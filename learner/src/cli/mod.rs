//! Command-line parsing and dispatch: one file per subcommand.

mod alerts;
mod capture;
mod client;
mod doctor;
mod eval;
mod k8s;
mod mode;
mod netpol;
mod profile;
mod replay;
mod review;
mod run;
mod session;
mod status;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Baseliner: learn each workload's normal behaviour with eBPF, alert on deviations, enforce.
#[derive(Debug, Parser)]
#[command(name = "baseliner", version, about)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Capture exec, file, network and privilege events live, one per line.
    Capture(capture::Args),
    /// Check that this host can run the agent, and say how to fix what is missing.
    Doctor(doctor::Args),
    /// Run the agent on this host: capture, attribute, and learn workload profiles.
    Run(run::Args),
    /// Learned profiles: list, show, export, import, diff.
    Profile(profile::Args),
    /// Workload modes: set and list.
    Mode(mode::Args),
    /// Kubernetes helpers: the WorkloadProfile CRD.
    K8s(k8s::Args),
    /// Kubernetes NetworkPolicy from a workload's profile, or check a namespace's policies.
    Netpol(netpol::Args),
    /// Stored alerts, most recent first.
    Alerts(alerts::Args),
    /// The audit log: responses the agent took and changes made through the API.
    Audit(alerts::AuditArgs),
    /// The review queue: proposed allow-list entries to approve or reject.
    Review(review::Args),
    /// Make an API token and print the configuration entry that admits it.
    Token(token::Args),
    /// Score a recorded trace offline against an exported profile.
    Replay(replay::Args),
    /// Detection quality on a recorded dataset: learn, hold back, attack.
    Eval(eval::Args),
    /// The agent, its kernel statistics, and each workload's mode and learning progress.
    Status(status::Args),
    /// Internal: the enforcement canary's probe, run by the agent in the canary cgroup.
    #[command(name = "__canary", hide = true)]
    Canary {
        /// The loopback port to try to connect to.
        port: u16,
    },
}

/// Sets up `tracing` on stderr.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Capture(a) => capture::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Run(a) => run::run(a),
        Command::Profile(a) => profile::run(a),
        Command::Mode(a) => mode::run(a),
        Command::Netpol(a) => netpol::run(a),
        Command::K8s(a) => k8s::run(a),
        Command::Alerts(a) => alerts::run(a),
        Command::Audit(a) => alerts::audit(a),
        Command::Review(a) => review::run(a),
        Command::Token(a) => token::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Canary { port } => learner::enforce::canary::probe(port),
        Command::Status(a) => status::run(a),
    }
}
