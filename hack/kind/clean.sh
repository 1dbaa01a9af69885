#!/usr/bin/env bash
# `make kind-clean`: after kind-down, remove what the kind scripts cached: the offline node, base and component
# images in the container engine's store, the image archives and root filesystems, the kind binary and podman
# settings. The Debian packages install.sh added (podman, buildah, debootstrap, ...) stay: remove them with apt.
set -euo pipefail
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if command -v "$ENGINE" >/dev/null; then
  "$ENGINE" images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null \
    | grep -E '^localhost/kubeinfer/|^registry.k8s.io/|^ghcr.io/kubeinfer/' \
    | xargs -r "$ENGINE" rmi -f >/dev/null 2>&1 || true
fi
rm -rf "$KUBEINFER_CACHE_DIR/images" "$KUBEINFER_CACHE_DIR/rootfs" "$KUBEINFER_CACHE_DIR/kind"
if [[ -f /lib/modules/.created-by-kubeinfer ]]; then
  rm -f /lib/modules/.created-by-kubeinfer
  rmdir /lib/modules 2>/dev/null || true
fi
log "kind caches removed"
