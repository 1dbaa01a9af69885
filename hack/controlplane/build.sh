#!/usr/bin/env bash
# Build the local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok, kwokctl) and the node binaries of the kind node image (kubelet, kubeadm, kube-proxy) from Go modules into a versioned cache folder. Idempotent: returns at once when the
# binaries for these versions are already there. Go's module and build caches stay in Go's defaults.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"

CACHE_DIR="${KUBEINFER_CACHE_DIR:-$HOME/.cache/kubeinfer}"
ROOT="$CACHE_DIR/k8s/$K8S_VERSION"
BIN="$ROOT/bin"
SRC="$ROOT/src"
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kubeadm kube-proxy)
ALL_BINS=("${K8S_CMDS[@]}" etcd kwok kwokctl)
VERSIONS_WANTED="kubernetes=$K8S_VERSION
etcd=$ETCD_VERSION
kwok=$KWOK_VERSION"

log() { printf '[cluster-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

all_present() {
  local b
  [[ -f "$BIN/VERSIONS" && "$(cat "$BIN/VERSIONS")" == "$VERSIONS_WANTED" ]] || return 1
  for b in "${ALL_BINS[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

if all_present; then
  log "all binaries present in $BIN"
  exit 0
fi

GO="${GO:-$(command -v go || true)}"
[[ -n "$GO" ]] || GO=/usr/local/go/bin/go
[[ -x "$GO" ]] || die "Go not found (set GO=/path/to/go or put go on PATH)"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
log "using $("$GO" version)"
# A different version set in an existing folder: rebuild everything so VERSIONS stays truthful.
if [[ -f "$BIN/VERSIONS" && "$(cat "$BIN/VERSIONS")" != "$VERSIONS_WANTED" ]]; then
  log "VERSIONS differ; rebuilding"
  rm -f "$BIN/VERSIONS"
fi
mkdir -p "$BIN" "$SRC"

timed() {  # timed LABEL CMD...: run CMD and log how long it took
  local label="$1" start=$SECONDS
  shift
  "$@"
  log "$label: $((SECONDS - start)) s"
}

# --- kube-apiserver, kube-controller-manager, kube-scheduler, kubectl ------------------------------------------
build_kubernetes() {
  local need=0 c
  for c in "${K8S_CMDS[@]}"; do [[ -x "$BIN/$c" ]] || need=1; done
  if (( need == 0 )); then log "kubernetes binaries present"; return; fi
  local dir="$SRC/kubernetes"
  mkdir -p "$dir"
  log "fetching k8s.io/kubernetes@$K8S_VERSION go.mod"
  # k8s.io/kubernetes points its staging modules at ./staging/src/...; a wrapper module pins each of them to
  # the published k8s.io/X v0.MINOR.PATCH. The list comes from that go.mod so it follows the version.
  local upstream_gomod
  upstream_gomod="$(cd "$dir" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$upstream_gomod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION go.mod"
  local staging_version="v0.${K8S_VERSION#v1.}"
  local replaces
  replaces="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/src/k8s\.io/.*$#\1#p' \
    "$upstream_gomod" | sort -u)"
  [[ -n "$replaces" ]] || die "no staging replaces found in $upstream_gomod"
  log "$(wc -l <<<"$replaces") staging modules pinned to $staging_version"
  {
    echo "module kubeinfer.local/k8s-build"
    echo
    grep -E '^go [0-9]' "$upstream_gomod"
    # godebug may be one line or a block.
    awk '/^godebug \(/{b=1} b{print} b&&/^\)/{b=0;next} /^godebug [^(]/{print}' "$upstream_gomod"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m $staging_version"; done <<<"$replaces"
    echo ")"
  } >"$dir/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "// Package tools pins the Kubernetes commands this module builds."
    echo "package tools"
    echo
    echo "import ("
    for c in "${K8S_CMDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } >"$dir/tools.go"
  (cd "$dir" && timed "go mod tidy (kubernetes)" "$GO" mod tidy)
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local x pkg ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for x in "gitVersion=$K8S_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
      "buildDate=1970-01-01T00:00:00Z"; do
      ldflags+=" -X $pkg.$x"
    done
  done
  local pkgs=()
  for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "building ${K8S_CMDS[*]} (cold: several minutes)"
  (cd "$dir" && timed "go build (kubernetes)" "$GO" build -trimpath -ldflags "$ldflags" -o "$BIN/" "${pkgs[@]}")
}

# --- etcd --------------------------------------------------------------------------------------------------------
build_etcd() {
  if [[ -x "$BIN/etcd" ]]; then log "etcd present"; return; fi
  local dir="$SRC/etcd"
  mkdir -p "$dir"
  # `go install go.etcd.io/etcd/server/v3@...` is refused because its go.mod has replaces; mirror them here.
  cat >"$dir/go.mod" <<GOMOD
module kubeinfer.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
GOMOD
  cat >"$dir/tools.go" <<'GO'
//go:build tools

// Package tools pins the etcd server command this module builds.
package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$dir" && timed "go mod tidy (etcd)" "$GO" mod tidy)
  (cd "$dir" && timed "go build (etcd)" "$GO" build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
}

# --- kwok, kwokctl -----------------------------------------------------------------------------------------------
build_kwok() {
  local c
  for c in kwok kwokctl; do
    if [[ -x "$BIN/$c" ]]; then log "$c present"; continue; fi
    GOBIN="$BIN" timed "go install $c@$KWOK_VERSION" "$GO" install -trimpath -ldflags "-s -w" \
      "sigs.k8s.io/kwok/cmd/$c@$KWOK_VERSION"
  done
}

total_start=$SECONDS
build_etcd
build_kwok
build_kubernetes
for b in "${ALL_BINS[@]}"; do [[ -x "$BIN/$b" ]] || die "$b missing after build"; done
"$BIN/kube-apiserver" --version | grep -qx "Kubernetes $K8S_VERSION" \
  || die "kube-apiserver reports $("$BIN/kube-apiserver" --version), want $K8S_VERSION"
printf '%s\n' "$VERSIONS_WANTED" >"$BIN/VERSIONS"
log "done in $((SECONDS - total_start)) s: $BIN"
