//! `baseliner`: the Baseliner agent and its command line.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("baseliner: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
