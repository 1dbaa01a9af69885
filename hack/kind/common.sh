# Shared settings of the kind scripts (sourced, not executed). Everything is overridable by environment.
# docs/kind.md explains each variable; the defaults give a one-node cluster named "kubeinfer".
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBEINFER_CACHE_DIR="${KUBEINFER_CACHE_DIR:-$HOME/.cache/kubeinfer}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
K8S_VERSION="${K8S_VERSION:-v1.35.4}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
KIND_BIN_DIR="$KUBEINFER_CACHE_DIR/kind/$KIND_VERSION/bin"
KIND="${KIND:-$KIND_BIN_DIR/kind}"
K8S_BIN="${KUBEINFER_K8S_BIN:-$KUBEINFER_CACHE_DIR/k8s/$K8S_VERSION/bin}"
KUBECTL="${KUBECTL:-$K8S_BIN/kubectl}"
KIND_CLUSTER="${KIND_CLUSTER:-kubeinfer}"
# Where kind-up writes the cluster's kubeconfig and state a user may want (one folder per cluster).
KIND_STATE_DIR="${KIND_STATE_DIR:-$KUBEINFER_CACHE_DIR/kind/clusters/$KIND_CLUSTER}"
# podman's settings for kind: this sandbox's hard rlimits are below podman's defaults (docs/kind.md).
KUBEINFER_CONTAINERS_CONF="$KUBEINFER_CACHE_DIR/kind/containers.conf"

log() { printf '[kind] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

timed() {  # timed LABEL CMD...: run CMD and log how long it took
  local label="$1" start=$SECONDS
  shift
  "$@"
  log "$label: $((SECONDS - start)) s"
}

# The container engine kind drives: Docker when its daemon answers, podman otherwise (KIND_PROVIDER overrides).
detect_provider() {
  if [[ -n "${KIND_PROVIDER:-}" ]]; then
    echo "$KIND_PROVIDER"
  elif command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then
    echo docker
  else
    echo podman
  fi
}
PROVIDER="$(detect_provider)"
ENGINE="$PROVIDER"
if [[ "$PROVIDER" == podman ]]; then
  export KIND_EXPERIMENTAL_PROVIDER=podman
  [[ -f "$KUBEINFER_CONTAINERS_CONF" ]] && export CONTAINERS_CONF="$KUBEINFER_CONTAINERS_CONF"
fi

# Content hash of files and strings: the cache key of an image or a rootfs.
content_hash() {  # content_hash PATH_OR_STRING...
  local item
  for item in "$@"; do
    if [[ -d "$item" ]]; then
      (cd "$item" && find . -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    elif [[ -f "$item" ]]; then
      sha256sum <"$item"
    else
      printf '%s\n' "$item"
    fi
  done | sha256sum | cut -c1-16
}

image_exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }
