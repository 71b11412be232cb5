//! Builds the eBPF programs (`learner-ebpf`) for the BPF target with the nightly toolchain and
//! bpf-linker; `deploy/toolchain.sh` installs both.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name == "learner-ebpf")
        .ok_or_else(|| anyhow!("learner-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("learner-ebpf manifest has no parent"))?;
    aya_build::build_ebpf(
        [Package {
            name: "learner-ebpf",
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF programs: run deploy/toolchain.sh to install bpf-linker and the nightly rust-src")
}
