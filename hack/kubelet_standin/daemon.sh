#!/usr/bin/env bash
# Start or stop the kubelet stand-in for `make cluster-up` / `make cluster-down` (called by hack/controlplane).
# usage: daemon.sh start|stop CLUSTER_DIR [KUBECONFIG]
# Runs only for the default cluster (.cluster/) unless KUBEINFER_STANDIN=1; KUBEINFER_STANDIN=0 turns it off.
# Test sessions start their own stand-in in-process (fixture local_node), so their clusters get none from here.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
action="$1" cluster_dir="$2" kubeconfig="${3:-$2/kubeconfig}"
pid_file="$cluster_dir/standin.pid"
log() { printf '[standin] %s\n' "$*" >&2; }
running() { [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

case "$action" in
  start)
    default=0
    [[ "$(cd "$cluster_dir" && pwd)" == "$REPO_ROOT/.cluster" ]] && default=1
    [[ "${KUBEINFER_STANDIN:-$default}" == 1 ]] || { log "not started (KUBEINFER_STANDIN=1 to start it)"; exit 0; }
    if running; then log "already running (pid $(cat "$pid_file"))"; exit 0; fi
    python="$REPO_ROOT/.venv/bin/python"; [[ -x "$python" ]] || python=python3
    cd "$REPO_ROOT"
    # setsid execs in place (a background job is no group leader), so $! is the stand-in's own pid
    setsid "$python" -m hack.kubelet_standin --kubeconfig "$kubeconfig" --node local-exec \
      --state-dir "$cluster_dir/standin" >>"$cluster_dir/standin.log" 2>&1 </dev/null &
    echo $! >"$pid_file"
    log "started (pid $(cat "$pid_file"), log $cluster_dir/standin.log)"
    ;;
  stop)
    if running; then
      pid="$(cat "$pid_file")"
      kill -TERM "$pid"
      # It stops each pod's processes (up to their grace period, at most 30 s) and removes their namespaces.
      for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && log "pid $pid still running after 40 s" || log "stopped"
    fi
    rm -f "$pid_file"
    ;;
  *) log "usage: $0 start|stop CLUSTER_DIR [KUBECONFIG]"; exit 2 ;;
esac
