#!/usr/bin/env bash
# Start the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) with
# kwokctl's binary runtime on locally built binaries, then create the simulated node pools. No pod runs for real
# here (kwok only marks them Running): this is the API-only cluster of the operator scale benchmark; pods that
# must run use kind (`make kind-up`, docs/kind.md).
# Idempotent: an existing cluster is started if stopped and its nodes re-applied.
set -euo pipefail
# shellcheck source=hack/controlplane/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

start=$SECONDS
"$REPO_ROOT/hack/controlplane/build.sh"
mkdir -p "$CLUSTER_DIR"

if cluster_exists; then
  if KUBECONFIG="$KUBECONFIG_OUT" "$KUBECTL" get --raw /readyz >/dev/null 2>&1; then
    log "cluster $CLUSTER_NAME already running"
  else
    log "starting existing cluster $CLUSTER_NAME"
    "$KWOKCTL" --name "$CLUSTER_NAME" start cluster --wait 2m
  fi
else
  log "creating cluster $CLUSTER_NAME (workdir $KWOK_WORKDIR)"
  rm -f "$KUBECONFIG_OUT"
  # kwokctl's binary runtime makes kwok manage every node; it is limited to the nodes annotated
  # kwok.x-k8s.io/node=fake (later flags win), so a perf script may add nodes served by something else.
  "$KWOKCTL" --name "$CLUSTER_NAME" create cluster \
    --runtime binary \
    --kubeconfig "$KUBECONFIG_OUT" \
    --kube-apiserver-binary "$BIN/kube-apiserver" \
    --kube-controller-manager-binary "$BIN/kube-controller-manager" \
    --kube-scheduler-binary "$BIN/kube-scheduler" \
    --kwok-controller-binary "$BIN/kwok" \
    --etcd-binary "$BIN/etcd" \
    --extra-args kwok-controller=manage-all-nodes=false \
    --extra-args kwok-controller=manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --wait 2m
fi
export KUBECONFIG="$KUBECONFIG_OUT"
kubectl() { "$KUBECTL" "$@"; }

log "applying node pools"
"$REPO_ROOT/hack/controlplane/nodes.sh" | kubectl apply -f - >/dev/null

# kwok marks its nodes Ready; the default ServiceAccount must exist before pods can be created.
kubectl wait --for=condition=Ready node -l 'kubeinfer.dev/pool in (cpu,gpu)' --timeout=120s >/dev/null
for _ in $(seq 1 120); do
  kubectl get serviceaccount default -n default >/dev/null 2>&1 && break
  sleep 0.5
done
kubectl get serviceaccount default -n default >/dev/null || die "default ServiceAccount never appeared"

printf 'export KUBECONFIG=%q\nexport PATH=%q:"$PATH"\n' "$KUBECONFIG_OUT" "$BIN" >"$CLUSTER_DIR/env"
kubectl get nodes -L kubeinfer.dev/pool >&2
log "cluster $CLUSTER_NAME ready in $((SECONDS - start)) s"
log "use it with:  export KUBECONFIG=$KUBECONFIG_OUT   (or: source $CLUSTER_DIR/env)"
echo "export KUBECONFIG=$KUBECONFIG_OUT"
