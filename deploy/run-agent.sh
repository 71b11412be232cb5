#!/usr/bin/env bash
# Sets up everything this host needs, builds Baseliner, checks the host with `baseliner doctor`
# and runs the agent here with its embedded store (no cluster needed): every workload (cgroup)
# is learned into a profile in /var/lib/baseliner. Read them with `baseliner profile list|show`
# once the agent is stopped.
# Usage: deploy/run-agent.sh [run options...]   e.g. --cgroup /system.slice/nginx.service, --store DIR
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/toolchain.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "[run-agent] building baseliner (release)" >&2
cargo build --release -p learner --bin baseliner
./target/release/baseliner doctor
exec ./target/release/baseliner run "$@"
