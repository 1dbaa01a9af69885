#!/usr/bin/env bash
# Simulated node pools inside a kind cluster (docs/kind.md, "Simulated pools"): kwok, built from its Go module
# into a one-binary image, runs as a Deployment in kube-system and manages the Nodes annotated
# kwok.x-k8s.io/node=fake that hack/controlplane/nodes.sh prints (a CPU and a GPU pool, each tainted with its
# pool so only kubeinfer's pods for that pool land there). Pods bound to those nodes only *look* Running: no
# container runs. They serve placement and scale tests, never measurements.
#   kwok.sh image            build (or reuse) the image archive and print its path
#   kwok.sh apply KUBECONFIG the Deployment, its RBAC and the fake nodes (KIND_SIM_CPU_NODES, KIND_SIM_GPU_NODES)
set -euo pipefail
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
KWOK_IMAGE="localhost/kubeinfer/kwok:$KWOK_VERSION"
ADDONS="$KUBEINFER_CACHE_DIR/kind/addons"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

image() {
  local bin="$ADDONS/bin/kwok" archive ctx
  if [[ ! -x "$bin" ]]; then
    mkdir -p "$ADDONS/bin"
    # Static (CGO off), so the image holds the binary and nothing else.
    timed "kwok $KWOK_VERSION" env GOBIN="$ADDONS/bin" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
      "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  fi
  archive="$KUBEINFER_CACHE_DIR/images/kwok-$(content_hash "$bin" "$KWOK_VERSION").tar"
  if [[ ! -f "$archive" ]]; then
    mkdir -p "$(dirname "$archive")"
    ctx="$(mktemp -d)"
    cp "$bin" "$ctx/kwok"
    printf 'FROM scratch\nCOPY kwok /kwok\nENTRYPOINT ["/kwok"]\n' >"$ctx/Containerfile"
    "$ENGINE" build -q -t "$KWOK_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
    "$ENGINE" save $([[ "$ENGINE" == podman ]] && echo -m) -o "$archive.tmp" "$KWOK_IMAGE" >/dev/null
    mv "$archive.tmp" "$archive"
  fi
  echo "$archive"
}

# kwok's own stages (from its module's sources): nodes become Ready and keep a lease, pods become Ready, a Job's
# pods complete, deleted pods go.
STAGES=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)

stages() {
  local src f
  src="$(GOFLAGS=-mod=mod "$GO" mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$src/kustomize/stage" ]] || die "kwok $KWOK_VERSION sources not found in the Go module cache"
  for f in "${STAGES[@]}"; do
    echo "---"
    cat "$src/kustomize/stage/$f"
  done
}

apply() {
  local kubeconfig="$1" config
  config="$(mktemp)"
  stages >"$config"
  "$KUBECTL" --kubeconfig "$kubeconfig" -n kube-system create configmap kwok-stages --from-file=stages.yaml="$config" \
    --dry-run=client -o yaml | "$KUBECTL" --kubeconfig "$kubeconfig" apply -f - >/dev/null
  rm -f "$config"
  sed "s#@KWOK_IMAGE@#$KWOK_IMAGE#" "$REPO_ROOT/hack/kind/manifests/kwok.yaml" \
    | "$KUBECTL" --kubeconfig "$kubeconfig" apply -f - >/dev/null
  "$KUBECTL" --kubeconfig "$kubeconfig" -n kube-system rollout status deployment/kwok-controller --timeout=180s >&2
  KUBEINFER_CPU_NODES="${KIND_SIM_CPU_NODES:-0}" KUBEINFER_GPU_NODES="${KIND_SIM_GPU_NODES:-0}" \
    "$REPO_ROOT/hack/controlplane/nodes.sh" \
    | "$KUBECTL" --kubeconfig "$kubeconfig" apply -f - >/dev/null
  "$KUBECTL" --kubeconfig "$kubeconfig" wait --for=condition=Ready node -l type=kwok --timeout=120s >&2
}

case "${1:-}" in
  image) image ;;
  apply) apply "${2:?kubeconfig}" ;;
  *) die "usage: $0 image | apply KUBECONFIG" ;;
esac
