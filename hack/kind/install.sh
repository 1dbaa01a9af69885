#!/usr/bin/env bash
# Install what `make kind-up` needs on this machine, from package registries only; a second run is a no-op.
#   - the container engine: Docker when its daemon answers, else podman from Debian's packages, configured for
#     kind (rlimits this sandbox allows, the dnsname plugin for multi-node, an empty /lib/modules when absent)
#   - debootstrap and buildah (the offline node and base images), iptables/conntrack for the host side
#   - kind itself, built from its Go module into $KUBEINFER_CACHE_DIR/kind/<version>/bin
set -euo pipefail
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

apt_install() {  # apt_install PACKAGE...: install the missing ones
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "install ${missing[*]} with your package manager (docs/kind.md)"
  log "apt-get install ${missing[*]}"
  local sudo=""
  [[ $EUID -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

apt_install debootstrap iptables conntrack ca-certificates
if [[ "$PROVIDER" == podman ]]; then
  # runc, not crun (which apt picks for podman by default): crun refuses a host with cgroups in hybrid mode (v1
  # controllers beside a cgroup2 mount: "cgroups in hybrid mode not supported, drop all controllers from cgroupv2").
  apt_install podman buildah uidmap runc golang-github-containernetworking-plugin-dnsname
  mkdir -p "$(dirname "$KUBEINFER_CONTAINERS_CONF")"
  # podman's rootful default rlimits (1048576) exceed what some sandboxes and CI runners allow; runc then fails
  # with "error setting rlimit type 7". The hard limit of this shell is the most a container can get.
  nofile="$(ulimit -Hn)"; [[ "$nofile" == unlimited ]] && nofile=1048576
  # nproc: the hard limit itself is refused by runc in some sandboxes; 32768 is plenty for a node.
  nproc="$(ulimit -Hu)"; [[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
  cat >"$KUBEINFER_CONTAINERS_CONF.tmp" <<CONF
# Written by hack/kind/install.sh; used through CONTAINERS_CONF by the kind scripts only.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
CONF
  mv "$KUBEINFER_CONTAINERS_CONF.tmp" "$KUBEINFER_CONTAINERS_CONF"
else
  apt_install buildah 2>/dev/null || true
fi
# kind bind-mounts /lib/modules into its nodes; some VMs and CI runners have none.
if [[ ! -d /lib/modules ]]; then
  mkdir -p /lib/modules
  touch /lib/modules/.created-by-kubeinfer
fi

if [[ ! -x "$KIND" ]]; then
  GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
  [[ -x "$GO" ]] || die "Go not found: kind is built from its Go module (set GO=/path/to/go)"
  mkdir -p "$KIND_BIN_DIR"
  log "go install sigs.k8s.io/kind@$KIND_VERSION"
  timed "kind" env GOBIN="$KIND_BIN_DIR" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false "$GO" install "sigs.k8s.io/kind@$KIND_VERSION"
fi
log "provider $PROVIDER, $("$KIND" version)"
