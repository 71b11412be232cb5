#!/usr/bin/env bash
# Sets up everything, then runs the whole test suite: formatting, lints, unit tests, the live
# eBPF tests (root; under CI=true they must run, elsewhere they skip with a reason) and short
# runs of the overhead benchmark (its drop-accounting check must pass) and of the alert latency
# benchmark (every deviation must raise an alert that reaches the webhook).
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINER_TEST_PACKAGES=1 ./deploy/toolchain.sh
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n== %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (host crates)"
cargo clippy --all-targets -- -D warnings
step "cargo clippy (eBPF crate, BPF target)"
cargo +nightly clippy -p learner-ebpf --bins --target bpfel-unknown-none -Z build-std=core --release -- -D warnings
step "cargo build (debug binary used by the CLI tests)"
cargo build -p learner --bin baseliner
step "cargo test (unit, contract, live eBPF)"
# --nocapture so that a skipped live test's reason is printed.
cargo test -- --nocapture
# The short benchmark runs check behaviour (every event accounted for, every deviation alerted,
# every pod cached), not figures: they run the debug builds made above (`--profile dev`), which
# saves a release build of the whole tree. The README's figures come from release runs.
step "overhead benchmark (short run, debug build)"
BENCH_SECONDS=${BENCH_SECONDS:-1} BENCH_ROUNDS=${BENCH_ROUNDS:-1} BENCH_PAIRS=${BENCH_PAIRS:-2} \
  BENCH_FLOOR_ROUNDS=${BENCH_FLOOR_ROUNDS:-1} \
  cargo bench --profile dev -p baseliner-tests --bench overhead
step "alert latency benchmark (short run, debug build: every deviation must reach the webhook)"
BENCH_DEVIATIONS=${BENCH_DEVIATIONS:-20} cargo bench --profile dev -p baseliner-tests --bench alert_latency
step "pod cache benchmark (debug build: 1,000 pods through the fake Kubernetes API server)"
cargo bench --profile dev -p baseliner-tests --bench kube_pods
step "all tests passed"
