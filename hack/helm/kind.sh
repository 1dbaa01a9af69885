#!/usr/bin/env bash
# `make kind-up` / `make kind-down`: a kind cluster with kubeinfer installed from the chart (docs/kind.md).
#   up:   create the cluster (one node, labelled as the cpu pool), load the images built by `make images`,
#         install the chart with charts/kubeinfer/ci/kind-values.yaml, wait for it, apply examples/quickstart.yaml
#   down: delete the cluster
# Env: KIND_CLUSTER (kubeinfer), NAMESPACE (kubeinfer), KIND, KUBECTL, HELM, IMAGES (space-separated refs to load).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND="${KIND:-kind}"
KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"
CLUSTER="${KIND_CLUSTER:-kubeinfer}"
NAMESPACE="${NAMESPACE:-kubeinfer}"
RELEASE="${RELEASE:-kubeinfer}"
IMAGES="${IMAGES:-}"

log() { printf '[kind] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }

up() {
  need "$KIND" "go install sigs.k8s.io/kind@v0.33.0 (docs/kind.md)"
  need "$KUBECTL" "see docs/kind.md"
  need docker "kind runs its nodes as Docker containers"
  [[ -x "$HELM" ]] || need "$HELM" "make helm-build"
  if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "cluster $CLUSTER exists"
  else
    "$KIND" create cluster --name "$CLUSTER" --wait 120s
  fi
  local context="kind-$CLUSTER"
  # The operator places runner Jobs and CPU cells on nodes labelled with their pool.
  "$KUBECTL" --context "$context" label nodes --all kubeinfer.dev/pool=cpu --overwrite
  local image
  for image in $IMAGES; do
    log "loading $image"
    "$KIND" load docker-image --name "$CLUSTER" "$image"
  done
  "$HELM" upgrade --install "$RELEASE" "$ROOT/charts/kubeinfer" \
    --kube-context "$context" --namespace "$NAMESPACE" --create-namespace \
    -f "$ROOT/charts/kubeinfer/ci/kind-values.yaml" --wait --timeout 15m
  "$KUBECTL" --context "$context" apply -n "$NAMESPACE" -f "$ROOT/examples/quickstart.yaml"
  log "done: kubectl --context $context get bm -n $NAMESPACE -w"
}

down() {
  need "$KIND" "go install sigs.k8s.io/kind@v0.33.0 (docs/kind.md)"
  "$KIND" delete cluster --name "$CLUSTER"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
