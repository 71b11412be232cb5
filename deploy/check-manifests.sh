#!/usr/bin/env bash
# Checks the kustomize base in deploy/: renders it with `kubectl kustomize`, validates every
# rendered object against the Kubernetes schemas (kubernetes-validate --strict, offline: an
# unknown or misspelt field fails), and runs checkov's Kubernetes security checks, failing on
# any failed check. A check the agent cannot satisfy is skipped in the manifest itself, on that
# object, with a `checkov.io/skipN: CKV_K8S_xx=reason` annotation (see daemonset.yaml). checkov
# also checks deploy/Dockerfile.
#
#   deploy/check-manifests.sh                 # install the tools when missing, then check
#   deploy/check-manifests.sh --install-only  # only install the tools (deploy/toolchain.sh)
#
# The tools live in a Python venv at $BASELINER_VENV (default /opt/baseliner-venv), created and
# filled only when missing or at other versions; a second run makes no network call.
# The rendered YAML is written to $BASELINER_RENDERED (default: a temporary file).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[check-manifests] %s\n' "$*" >&2; }

VENV=${BASELINER_VENV:-/opt/baseliner-venv}
# Pinned: a new checkov release adds checks, which must not fail an unchanged commit.
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
# Schemas of the oldest Kubernetes the manifests target (the agent's k8s-openapi feature is
# v1_33) and of the newest kubernetes-validate knows (its default).
KUBE_VERSIONS=(1.33.0 "$KUBERNETES_VALIDATE_VERSION")

tools_ready() {
  [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/checkov" ] &&
    [ -f "$VENV/.baseliner-versions" ] &&
    [ "$(cat "$VENV/.baseliner-versions")" = "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION checkov==$CHECKOV_VERSION" ]
}

install_tools() {
  tools_ready && return 0
  # Debian's python3 (with python3-venv) when present, so the venv does not depend on a
  # user's Python installation.
  local py=python3
  [ -x /usr/bin/python3 ] && py=/usr/bin/python3
  "$py" -c 'import venv, ensurepip' 2>/dev/null ||
    { log "$py cannot create a venv: install python3-venv"; exit 1; }
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and checkov $CHECKOV_VERSION into $VENV (about a minute)"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
  echo "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION checkov==$CHECKOV_VERSION" >"$VENV/.baseliner-versions"
}

install_tools
[ "${1:-}" = --install-only ] && exit 0

command -v kubectl >/dev/null || { log "kubectl (with kustomize) is required"; exit 1; }

if [ -n "${BASELINER_RENDERED:-}" ]; then
  rendered=$BASELINER_RENDERED
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  rendered=$tmp/rendered.yaml
fi

log "kubectl kustomize deploy/ > $rendered"
kubectl kustomize deploy/ >"$rendered"

# kubernetes-validate only warns (exit 0) about a kind it has no schema for: a custom resource,
# or a misspelt apiVersion such as `app/v1`. The base holds no custom resource (the CRD itself
# is validated as an apiextensions.k8s.io/v1 object), so any such warning fails the check.
for v in "${KUBE_VERSIONS[@]}"; do
  log "kubernetes-validate --strict (Kubernetes $v)"
  out=$("$VENV/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$v" "$rendered" 2>&1) ||
    { printf '%s\n' "$out" >&2; exit 1; }
  if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    log "kubernetes-validate found objects it cannot check (unknown kind or apiVersion)"
    exit 1
  fi
done

log "checkov --framework kubernetes"
# --skip-download: checkov otherwise asks the Prisma Cloud API for guidelines (offline here,
# and nothing the checks need). Its exit status is 1 on any failed check.
"$VENV/bin/checkov" -f "$rendered" --framework kubernetes --compact --quiet --skip-download
# The image's Dockerfile too (it cannot be built here; its skips are `#checkov:skip=` lines).
log "checkov --framework dockerfile (deploy/Dockerfile)"
"$VENV/bin/checkov" -f deploy/Dockerfile --framework dockerfile --compact --quiet --skip-download
log "manifests OK"
