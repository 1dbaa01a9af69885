#!/usr/bin/env bash
# Build helm from its Go module into a versioned cache folder ($KUBEINFER_CACHE_DIR/helm/<version>/bin/helm).
# Idempotent: returns at once when the binary for this version is already there. HELM_VERSION picks another
# release; HELM_BIN, when set, names an existing helm and skips the build. Go's caches stay in Go's defaults.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_DIR="${KUBEINFER_CACHE_DIR:-$HOME/.cache/kubeinfer}"
BIN="$CACHE_DIR/helm/$HELM_VERSION/bin"

log() { printf '[helm-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -n "${HELM_BIN:-}" ]]; then
  [[ -x "$HELM_BIN" ]] || die "HELM_BIN=$HELM_BIN is not executable"
  log "using HELM_BIN=$HELM_BIN"
  exit 0
fi

reports_version() { [[ -x "$BIN/helm" ]] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; }

if reports_version; then
  log "helm $HELM_VERSION present in $BIN"
  exit 0
fi

GO="${GO:-$(command -v go || true)}"
[[ -n "$GO" ]] || GO=/usr/local/go/bin/go
[[ -x "$GO" ]] || die "Go not found (set GO=/path/to/go or put go on PATH)"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
log "using $("$GO" version)"

major="${HELM_VERSION%%.*}"
module="helm.sh/helm/$major"
start=$SECONDS
# helm's own Makefile stamps the version and the Kubernetes version its lint and capabilities default to
# (taken from the client-go it is built with); without them `helm version` says "v3.22" and
# .Capabilities.KubeVersion falls back to an old default.
gomod="$(cd /tmp && "$GO" mod download -json "$module@$HELM_VERSION" \
  | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -f "$gomod" ]] || die "could not download $module@$HELM_VERSION"
client_go="$(sed -n 's#^[[:space:]]*k8s\.io/client-go[[:space:]]\{1,\}v0\.\([0-9]*\)\..*#\1#p' "$gomod" | head -n1)"
[[ -n "$client_go" ]] || die "no k8s.io/client-go version in $gomod"
ldflags="-s -w -X $module/internal/version.version=$HELM_VERSION -X $module/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X $module/$pkg.k8sVersionMajor=1 -X $module/$pkg.k8sVersionMinor=$client_go"
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log "building $module/cmd/helm@$HELM_VERSION (cold: a few minutes)"
GOBIN="$tmp" "$GO" install -trimpath -ldflags "$ldflags" "$module/cmd/helm@$HELM_VERSION"
mkdir -p "$BIN"
mv "$tmp/helm" "$BIN/helm"
reports_version || die "$BIN/helm reports $("$BIN/helm" version --short), want $HELM_VERSION"
log "done in $((SECONDS - start)) s: $BIN/helm"
