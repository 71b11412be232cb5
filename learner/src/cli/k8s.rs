//! `baseliner k8s`: Kubernetes helpers.

use std::process::ExitCode;

/// `baseliner k8s ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the WorkloadProfile CustomResourceDefinition (deploy/crd.yaml) as YAML.
    Crd,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Crd => print!("{}", learner::kubernetes::crd::crd_yaml()),
    }
    Ok(ExitCode::SUCCESS)
}
