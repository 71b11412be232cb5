#!/usr/bin/env bash
# Sets up everything this host needs, builds Baseliner, checks the host with `baseliner doctor`
# and runs the agent here, capturing every cgroup's activity (no cluster needed).
# Usage: deploy/run-agent.sh [capture options...]   e.g. --json, --cgroup /system.slice/nginx.service
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/toolchain.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "[run-agent] building baseliner (release)" >&2
cargo build --release -p learner --bin baseliner
./target/release/baseliner doctor
exec ./target/release/baseliner capture "$@"
