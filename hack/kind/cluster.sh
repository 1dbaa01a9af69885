#!/usr/bin/env bash
# `make kind-up` / `make kind-down` (docs/kind.md).
#   up:   tools (install.sh), node image (kindest/node, or node-image.sh with no registry), images (images.sh),
#         a kind cluster with the gateway's NodePort mapped to 127.0.0.1:$KIND_GATEWAY_PORT, the images loaded,
#         the host's model cache seeded into the cluster's, the chart installed into $NAMESPACE with
#         charts/kubeinfer/ci/kind-values.yaml, every pod Ready, `helm test`; then the last three lines are
#         `export KUBECONFIG=...`, `export OPENAI_BASE_URL=...`, `export OPENAI_API_KEY=...` for `eval`.
#   check: the settings below, as `up` checks them first; nothing is installed or created.
#   down: the cluster, its kubeconfig and state folder, the podman network kind made; the tools, images and
#         caches stay (they are caches; `make kind-clean` removes them too).
# Env: KIND_CLUSTER (kubeinfer), KIND_WORKERS (0), NAMESPACE (kubeinfer), KIND_GATEWAY_PORT (30080),
#      KIND_NODE_IMAGE (built or kindest/node), KUBEINFER_OFFLINE=1 (never try a registry), HELM, IMAGES
#      ("TARGET=TAG@DOCKERFILE ..." as the Makefile passes them), KIND_SKIP_HELM=1 (cluster and images only),
#      KIND_HELM_TEST=0 (install the chart without running `helm test`),
#      KIND_NODE_POOL (cpu: the kubeinfer.dev/pool label of the real nodes; another value aliases the chart's cpu
#      pool to it), KIND_SIM_CPU_NODES / KIND_SIM_GPU_NODES (0 / 0: kwok's simulated pools, hack/kind/kwok.sh),
#      KIND_POD_SUBNET (10.244.0.0/16; with the offline image and workers, a /24 of it per node: bridge.sh),
#      KIND_HOST_ROUTE=1 (route the pod subnet from this machine to the nodes, so processes here reach pod IPs;
#      removed by down), KIND_SHARED_DIRS (folders of this machine mounted into the
#      nodes at the same path, so a hostPath volume names the same folder on both sides).
set -euo pipefail
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=hack/kind/bridge.sh
source "$(dirname "${BASH_SOURCE[0]}")/bridge.sh"

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
NODE_POOL="${KIND_NODE_POOL:-cpu}"
SIM_NODES=0  # KIND_SIM_CPU_NODES + KIND_SIM_GPU_NODES, once check_settings has read them
POD_SUBNET="${KIND_POD_SUBNET:-10.244.0.0/16}"
ROUTE_FILE="$KIND_STATE_DIR/host-route"

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

node_mounts() {  # node_mounts OFFLINE(0|1) INDEX: the offline image's bridge CNI file of node INDEX (bridge.sh)
  local dir
  echo "  extraMounts:"
  echo "  - {hostPath: $MODELS_DIR, containerPath: $NODE_MODELS_PATH}"
  (($1)) && echo "  - {hostPath: $(cni_dir)/$(node_name "$2").conflist, containerPath: /etc/cni/net.d/10-bridge.conflist}"
  for dir in ${KIND_SHARED_DIRS:-}; do
    echo "  - {hostPath: $dir, containerPath: $dir}"
  done
}

write_config() {  # write_config IMAGE OFFLINE(0|1)
  local image="$1" offline="$2" i
  {
    echo "kind: Cluster"
    echo "apiVersion: kind.x-k8s.io/v1alpha4"
    echo "networking:"
    echo "  apiServerAddress: 127.0.0.1"
    echo "  podSubnet: $POD_SUBNET"
    # The offline node image has a bridge CNI baked in instead of kindnetd (not buildable from the module proxy).
    ((offline)) && echo "  disableDefaultCNI: true"
    echo "nodes:"
    echo "- role: control-plane"
    [[ -n "$image" ]] && echo "  image: $image"
    echo "  labels: {kubeinfer.dev/pool: $NODE_POOL}"
    echo "  extraPortMappings:"
    echo "  - {containerPort: $GATEWAY_NODE_PORT, hostPort: $GATEWAY_PORT, listenAddress: 127.0.0.1}"
    node_mounts "$offline" 0
    for ((i = 1; i <= WORKERS; i++)); do
      echo "- role: worker"
      [[ -n "$image" ]] && echo "  image: $image"
      echo "  labels: {kubeinfer.dev/pool: $NODE_POOL}"
      node_mounts "$offline" "$i"
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

images() {  # prints the archives; runs in $(...), where errexit is off, so each failure returns explicitly
  if [[ -n "${IMAGES:-}" ]]; then
    # shellcheck disable=SC2086
    "$REPO_ROOT/hack/kind/images.sh" $IMAGES || return
  fi
  ((SIM_NODES == 0)) || "$REPO_ROOT/hack/kind/kwok.sh" image
}

helm_pool_args() {  # the chart's own pods and its cpu pool on the real nodes when they carry another pool label
  [[ "$NODE_POOL" == cpu ]] && return 0
  echo "--set-json=pools.aliases={\"cpu\":\"$NODE_POOL\"}"
  echo "--set-json=pools.cpu.nodeSelector={\"kubeinfer.dev/pool\":\"$NODE_POOL\"}"
}

is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }

# Every setting checked before anything is installed, built or created, so a typo costs seconds, not a build.
check_settings() {
  local name dir
  for name in KIND_WORKERS KIND_SIM_CPU_NODES KIND_SIM_GPU_NODES KIND_GATEWAY_PORT; do
    is_count "${!name:-0}" || die "$name must be a whole number, not '${!name}'"
  done
  ((GATEWAY_PORT >= 1 && GATEWAY_PORT <= 65535)) || die "KIND_GATEWAY_PORT must be a port (1-65535), not $GATEWAY_PORT"
  [[ "$POD_SUBNET" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]] \
    || die "KIND_POD_SUBNET must be an IPv4 CIDR such as 10.244.0.0/16, not '$POD_SUBNET'"
  [[ "$NODE_POOL" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] \
    || die "KIND_NODE_POOL must be a label value such as cpu or local, not '$NODE_POOL'"
  for name in KIND_HOST_ROUTE KIND_SKIP_HELM KIND_HELM_TEST; do
    case "${!name:-0}" in 0 | 1) ;; *) die "$name must be 0 or 1, not '${!name}'" ;; esac
  done
  bridge_fits || die "give KIND_POD_SUBNET room for a /24 per node (e.g. 10.244.0.0/16) or fewer KIND_WORKERS"
  # kwok's CPU nodes carry pool `cpu`; real nodes with the same label would share the pool with them.
  ((${KIND_SIM_CPU_NODES:-0} > 0)) && [[ "$NODE_POOL" == cpu ]] \
    && die "KIND_SIM_CPU_NODES needs KIND_NODE_POOL set to another pool than cpu (e.g. local), or kubeinfer's cpu pods may land on simulated nodes"
  for dir in ${KIND_SHARED_DIRS:-}; do
    [[ "$dir" == /* ]] || die "KIND_SHARED_DIRS: $dir is not an absolute path"
    [[ -d "$dir" ]] || die "KIND_SHARED_DIRS: $dir is not a folder"
  done
  SIM_NODES=$((${KIND_SIM_CPU_NODES:-0} + ${KIND_SIM_GPU_NODES:-0}))
}

up() {
  local start=$SECONDS
  check_settings
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
    seed_models
    ((offline)) && write_cni_configs
    write_config "$image" "$offline"
    timed "kind create cluster" "$KIND" create cluster --name "$KIND_CLUSTER" \
      --config "$KIND_STATE_DIR/kind-config.yaml" --kubeconfig "$KUBECONFIG_OUT" --wait 180s >&2
    ((offline)) && link_node_ranges
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
  # This machine's address as the node sees it (servers a test starts for the pods listen there).
  "$ENGINE" exec "$KIND_CLUSTER-control-plane" ip -4 route show default | awk '{print $3; exit}' \
    >"$KIND_STATE_DIR/host-address"
  [[ "${KIND_HOST_ROUTE:-0}" == 1 ]] && add_host_routes
  if ((SIM_NODES > 0)); then
    timed "kwok and its simulated pools" "$REPO_ROOT/hack/kind/kwok.sh" apply "$KUBECONFIG_OUT"
  fi
  if [[ "${KIND_SKIP_HELM:-}" != 1 ]]; then
    kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    model_cache_volume | kubectl apply -f - >/dev/null
    timed "helm upgrade --install" "$HELM" upgrade --install "$RELEASE" "$REPO_ROOT/charts/kubeinfer" \
      --kubeconfig "$KUBECONFIG_OUT" --namespace "$NAMESPACE" \
      -f "$REPO_ROOT/charts/kubeinfer/ci/kind-values.yaml" \
      --set "gateway.service.nodePort=$GATEWAY_NODE_PORT" $(helm_pool_args) \
      --wait --timeout 15m >&2
    # The chart's Deployments (helm --wait saw them), then the model server the operator runs for its ModelInstall.
    kubectl -n "$NAMESPACE" rollout status deployment -l "app.kubernetes.io/instance=$RELEASE" --timeout=600s >&2
    kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.phase}'=Ready modelinstall --all --timeout=600s >&2
    if [[ "${KIND_HELM_TEST:-1}" == 1 ]]; then
      timed "helm test" "$HELM" test "$RELEASE" --kubeconfig "$KUBECONFIG_OUT" --namespace "$NAMESPACE" \
        --timeout 10m --logs >&2
    fi
  fi
  log "ready in $((SECONDS - start)) s: $(kubectl get nodes --no-headers | wc -l) node(s), provider $PROVIDER"
  echo "export KUBECONFIG=$KUBECONFIG_OUT"
  echo "export OPENAI_BASE_URL=http://127.0.0.1:$GATEWAY_PORT/v1"
  echo "export OPENAI_API_KEY=$API_KEY"
}

down() {
  remove_host_routes
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
  check) check_settings && log "settings ok" ;;
  *) die "usage: $0 up|down|check" ;;
esac
