//! `baseliner token`: a new API token, and the configuration entry that admits it (only its
//! SHA-256 is stored).

use std::process::ExitCode;

use api::auth::{Role, TokenConfig, new_token, token_sha256};

/// `baseliner token --name NAME --role ROLE`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Who will hold it; recorded in the audit log for every change made with it.
    #[arg(long)]
    name: String,
    /// viewer (read), reviewer (approve / reject, acknowledge) or admin (modes, import).
    #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
    role: Role,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let token = new_token()?;
    let entry = TokenConfig {
        name: args.name,
        role: args.role,
        sha256: token_sha256(&token),
    };
    entry.validate().map_err(anyhow::Error::msg)?;
    eprintln!("token (shown once; give it to {}):", entry.name);
    println!("{token}");
    eprintln!(
        "\nadd to the agent's configuration ([api] listen = \"127.0.0.1:7878\" serves it):\n\n\
         [[api.tokens]]\nname = {:?}\nrole = \"{}\"\nsha256 = \"{}\"",
        entry.name, entry.role, entry.sha256
    );
    Ok(ExitCode::SUCCESS)
}
