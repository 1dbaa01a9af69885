#!/usr/bin/env bash
# `make kind-up` / `make kind-down` (docs/kind.md).
#   up:   tools (install.sh), node image (kindest/node, or node-image.sh with no registry), images (images.sh),
#         a kind cluster with the gateway's NodePort mapped to 127.0.0.1:$KIND_GATEWAY_PORT, the images loaded,
#         the host's model cache seeded into the cluster's, the chart installed into $NAMESPACE with
#         charts/kubeinfer/ci/kind-values.yaml, every pod Ready, `helm test`; then the last three lines are
#         `export KUBECONFIG=...`, `export OPENAI_BASE_URL=...`, `export OPENAI_API_KEY=...` for `eval`.
#   down: the cluster, its kubeconfig and state folder, the podman network kind made; the tools, images and
#         caches stay (they are caches; `make kind-clean` removes them too).
# Env: KIND_CLUSTER (kubeinfer), KIND_WORKERS (0), NAMESPACE (kubeinfer), KIND_GATEWAY_PORT (30080),
#      KIND_NODE_IMAGE (built or kindest/node), KUBEINFER_OFFLINE=1 (never try a registry), HELM, IMAGES
#      ("TARGET=TAG@DOCKERFILE ..." as the Makefile passes them), KIND_SKIP_HELM=1 (cluster and images only).
set -euo pipefail
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NAMESPACE="${NAMESPACE:-kubeinfer}"
RELEASE="${RELEASE:-kubeinfer}"
WORKERS="${KIND_WORKERS:-0}"
GATEWAY_PORT="${KIND_GATEWAY_PORT:-30080}"
GATEWAY_NODE_PORT=30080
HELM="${HELM:-helm}"
KUBECONFIG_OUT="$KIND_STATE_DIR/kubeconfig"
MODELS_DIR="$KIND_STATE_DIR/models"
NODE_MODELS_PATH=/var/lib/kubeinfer/models
API_KEY="${KIND_API_KEY:-sk-kind}"

kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_OUT" "$@"; }

cluster_exists() { "$KIND" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; }

node_image() {
  if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
    echo "$KIND_NODE_IMAGE"
  elif [[ "$PROVIDER" == docker && "${KUBEINFER_OFFLINE:-}" != 1 ]]; then
    echo ""  # kind's default kindest/node, pulled by kind
  else
    "$REPO_ROOT/hack/kind/node-image.sh"
  fi
}

write_config() {  # write_config IMAGE OFFLINE(0|1)
  local image="$1" offline="$2" i
  {
    echo "kind: Cluster"
    echo "apiVersion: kind.x-k8s.io/v1alpha4"
    echo "networking:"
    echo "  apiServerAddress: 127.0.0.1"
    # The offline node image has a bridge CNI baked in instead of kindnetd (not buildable from the module proxy).
    ((offline)) && echo "  disableDefaultCNI: true"
    echo "nodes:"
    echo "- role: control-plane"
    [[ -n "$image" ]] && echo "  image: $image"
    echo "  labels: {kubeinfer.dev/pool: cpu}"
    echo "  extraPortMappings:"
    echo "  - {containerPort: $GATEWAY_NODE_PORT, hostPort: $GATEWAY_PORT, listenAddress: 127.0.0.1}"
    echo "  extraMounts:"
    echo "  - {hostPath: $MODELS_DIR, containerPath: $NODE_MODELS_PATH}"
    for ((i = 0; i < WORKERS; i++)); do
      echo "- role: worker"
      [[ -n "$image" ]] && echo "  image: $image"
      echo "  labels: {kubeinfer.dev/pool: cpu}"
      echo "  extraMounts:"
      echo "  - {hostPath: $MODELS_DIR, containerPath: $NODE_MODELS_PATH}"
    done
    # cgroup v1 hosts (this sandbox, older CI runners) and hosts with swap.
    cat <<'YAML'
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
  failSwapOn: false
YAML
  } >"$KIND_STATE_DIR/kind-config.yaml"
}

# The cluster's model cache is a folder of the host mounted into the node: models the host already has (make
# setup) are copied in, so a first matrix needs no download; the images run as uid 10001.
seed_models() {
  mkdir -p "$MODELS_DIR"
  local host_models="${KUBEINFER_MODEL_DIR:-$KUBEINFER_CACHE_DIR/models}"
  if [[ -d "$host_models" && "${KIND_SEED_MODELS:-1}" == 1 ]]; then
    log "seeding the cluster's model cache from $host_models"
    cp -a --no-clobber "$host_models/." "$MODELS_DIR/" 2>/dev/null || cp -a -n "$host_models/." "$MODELS_DIR/"
    find "$MODELS_DIR" -name '*.lock' -delete
  fi
  chown -R 10001:10001 "$MODELS_DIR"
}

model_cache_volume() {
  cat <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $RELEASE-model-cache
  labels: {app.kubernetes.io/part-of: kubeinfer}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $NODE_MODELS_PATH, type: Directory}
  claimRef: {namespace: $NAMESPACE, name: model-cache}
YAML
}

images() {  # prints the archives
  [[ -n "${IMAGES:-}" ]] || return 0
  # shellcheck disable=SC2086
  "$REPO_ROOT/hack/kind/images.sh" $IMAGES
}

up() {
  local start=$SECONDS
  "$REPO_ROOT/hack/kind/install.sh"
  source "$REPO_ROOT/hack/kind/common.sh"  # CONTAINERS_CONF exists now
  mkdir -p "$KIND_STATE_DIR"
  local archives
  archives="$(images)"
  if cluster_exists; then
    log "cluster $KIND_CLUSTER exists"
  else
    local image offline=0
    image="$(node_image)"
    [[ "$image" == localhost/kubeinfer/kind-node:* ]] && offline=1
    ((offline && WORKERS > 0)) && die "the offline node image has a single-node bridge CNI: KIND_WORKERS must be 0"
    seed_models
    write_config "$image" "$offline"
    timed "kind create cluster" "$KIND" create cluster --name "$KIND_CLUSTER" \
      --config "$KIND_STATE_DIR/kind-config.yaml" --kubeconfig "$KUBECONFIG_OUT" --wait 180s >&2
  fi
  "$KIND" get kubeconfig --name "$KIND_CLUSTER" >"$KUBECONFIG_OUT"
  local archive
  for archive in $archives; do
    timed "kind load $(basename "$archive")" "$KIND" load image-archive --name "$KIND_CLUSTER" "$archive" >&2
  done
  kubectl wait --for=condition=Ready nodes --all --timeout=180s >&2
  # One node needs one CoreDNS replica; the second one's CPU request is better left to benchmark cells.
  ((WORKERS == 0)) && kubectl -n kube-system scale deployment/coredns --replicas=1 >/dev/null
  kubectl -n kube-system rollout status deployment/coredns --timeout=180s >&2
  if [[ "${KIND_SKIP_HELM:-}" != 1 ]]; then
    kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    model_cache_volume | kubectl apply -f - >/dev/null
    timed "helm upgrade --install" "$HELM" upgrade --install "$RELEASE" "$REPO_ROOT/charts/kubeinfer" \
      --kubeconfig "$KUBECONFIG_OUT" --namespace "$NAMESPACE" \
      -f "$REPO_ROOT/charts/kubeinfer/ci/kind-values.yaml" \
      --set "gateway.service.nodePort=$GATEWAY_NODE_PORT" \
      --wait --timeout 15m >&2
    # The chart's Deployments (helm --wait saw them), then the model server the operator runs for its ModelInstall.
    kubectl -n "$NAMESPACE" rollout status deployment -l "app.kubernetes.io/instance=$RELEASE" --timeout=600s >&2
    kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.phase}'=Ready modelinstall --all --timeout=600s >&2
    timed "helm test" "$HELM" test "$RELEASE" --kubeconfig "$KUBECONFIG_OUT" --namespace "$NAMESPACE" \
      --timeout 10m --logs >&2
  fi
  log "ready in $((SECONDS - start)) s: $(kubectl get nodes --no-headers | wc -l) node(s), provider $PROVIDER"
  echo "export KUBECONFIG=$KUBECONFIG_OUT"
  echo "export OPENAI_BASE_URL=http://127.0.0.1:$GATEWAY_PORT/v1"
  echo "export OPENAI_API_KEY=$API_KEY"
}

down() {
  if [[ -x "$KIND" ]] && cluster_exists; then
    "$KIND" delete cluster --name "$KIND_CLUSTER" >&2
  fi
  # kind creates one container network named "kind" for all its clusters; remove it with the last cluster.
  if [[ -x "$KIND" ]] && [[ -z "$("$KIND" get clusters 2>/dev/null)" ]] && command -v "$ENGINE" >/dev/null; then
    "$ENGINE" network rm kind >/dev/null 2>&1 || true
  fi
  rm -rf "$KIND_STATE_DIR"
  log "cluster $KIND_CLUSTER removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
