#!/usr/bin/env bash
# Installs everything Baseliner needs to build and run on a Debian 12 machine with rustup:
# the nightly rust-src component, bpf-linker linked against the nightly's own LLVM, and the
# Debian packages the agent and its tests use. Idempotent: a second run only checks.
set -euo pipefail

log() { printf '[toolchain] %s\n' "$*" >&2; }

BPF_LINKER_VERSION=0.13.0
NIGHTLY=${BASELINER_NIGHTLY:-nightly}
export PATH="$HOME/.cargo/bin:$PATH"

# Debian packages: only what is missing, so a warm machine makes no network calls.
want_pkgs=(iproute2 ca-certificates)
[ "${BASELINER_TEST_PACKAGES:-0}" = 1 ] && want_pkgs+=(util-linux python3 python3-venv gcc-multilib prometheus-alertmanager)
missing=()
for p in "${want_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root to install them)"; exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v rustup >/dev/null || { log "rustup is required (https://rustup.rs)"; exit 1; }
if ! rustup toolchain list | grep -q "^$NIGHTLY"; then
  log "installing the $NIGHTLY toolchain"
  rustup toolchain install "$NIGHTLY" --profile minimal
fi
# rust-src builds core for the BPF target; clippy lints the eBPF crate (test suite only).
for comp in rust-src clippy; do
  if ! rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -q "^$comp"; then
    log "adding $comp to $NIGHTLY"
    rustup component add "$comp" --toolchain "$NIGHTLY"
  fi
done
for comp in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
    log "adding $comp to the default toolchain"
    rustup component add "$comp"
  fi
done

if command -v bpf-linker >/dev/null && bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  log "bpf-linker $BPF_LINKER_VERSION present"
else
  TL=$(rustc +"$NIGHTLY" --print sysroot)/lib
  llvm=$(ls "$TL" | sed -n 's/^lib\(LLVM-[0-9]*-rust-.*\)\.so$/\1/p' | head -n1)
  [ -n "$llvm" ] || { log "no libLLVM-*-rust-*.so in $TL"; exit 1; }
  major=$(echo "$llvm" | sed -n 's/^LLVM-\([0-9]*\)-.*/\1/p')
  log "building bpf-linker $BPF_LINKER_VERSION against $llvm (about 2 minutes)"
  RUSTFLAGS="-C link-arg=-L$TL -C link-arg=-l$llvm -C link-arg=-Wl,-rpath,$TL" \
    cargo install bpf-linker --locked --version "$BPF_LINKER_VERSION" --no-default-features \
      --features "llvm-$major,no-llvm-linking"
fi
# The manifest checks' tools (kubernetes-validate, checkov) in a Python venv, for the test
# suite only; check-manifests.sh pins their versions and installs them only when missing.
if [ "${BASELINER_TEST_PACKAGES:-0}" = 1 ]; then
  "$(dirname "$0")/check-manifests.sh" --install-only
fi
log "toolchain ready"
