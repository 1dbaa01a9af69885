#!/usr/bin/env bash
# Stop and delete the local control plane started by up.sh (processes, etcd data, kubeconfig).
set -euo pipefail
# shellcheck source=hack/controlplane/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! cluster_exists; then
  log "no cluster $CLUSTER_NAME under $KWOK_WORKDIR"
  rm -f "$KUBECONFIG_OUT" "$CLUSTER_DIR/env"
  exit 0
fi
[[ -x "$KWOKCTL" ]] || die "$KWOKCTL missing; run hack/controlplane/build.sh"
"$KWOKCTL" --name "$CLUSTER_NAME" delete cluster --kubeconfig "$KUBECONFIG_OUT"
rm -f "$KUBECONFIG_OUT" "$CLUSTER_DIR/env"
log "cluster $CLUSTER_NAME deleted"
