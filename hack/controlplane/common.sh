# Shared settings for up.sh and down.sh (sourced, not executed).
# Everything is overridable by environment so tests can run an isolated cluster next to `make cluster-up`'s.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.35.4}"
KUBEINFER_CACHE_DIR="${KUBEINFER_CACHE_DIR:-$HOME/.cache/kubeinfer}"
BIN="${KUBEINFER_K8S_BIN:-$KUBEINFER_CACHE_DIR/k8s/$K8S_VERSION/bin}"
CLUSTER_NAME="${KUBEINFER_CLUSTER_NAME:-kubeinfer}"
CLUSTER_DIR="${KUBEINFER_CLUSTER_DIR:-$REPO_ROOT/.cluster}"
KUBECONFIG_OUT="$CLUSTER_DIR/kubeconfig"
# kwokctl keeps each cluster's state (pki, etcd data, logs, pids) under $KWOK_WORKDIR/clusters/NAME.
export KWOK_WORKDIR="${KWOK_WORKDIR:-$CLUSTER_DIR/kwok}"
# Offline: kwokctl must never try to download Kubernetes; it reads the version it configures flags for from here.
export KWOK_KUBE_VERSION="$K8S_VERSION"
export KWOK_KUBECTL_BINARY="$BIN/kubectl"
KWOKCTL="$BIN/kwokctl"
KUBECTL="$BIN/kubectl"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cluster_exists() {
  [[ -d "$KWOK_WORKDIR/clusters/$CLUSTER_NAME" ]]
}
