"""Two real kind nodes from the offline node image: the pod network between them, checked end to end.

kindnetd does not build from the Go module proxy, so the offline node image brings a bridge CNI, and with
`KIND_WORKERS` above 0 `hack/kind/bridge.sh` gives each node a /24 of the pod subnet and routes the ranges between
the nodes. This starts a cluster as `make kind-up KIND_WORKERS=1` does (the chart installed and `helm test`ed),
runs one small HTTP server pod pinned to each node behind one Service, and checks, recording each outcome:
- each pod's address lies in its node's range;
- each pod reaches the other across the nodes by its address, and the other sees the caller's own address
  (no NAT between pods);
- the Service, by its DNS name from a pod, answers from both pods (CoreDNS and kube-proxy across nodes);
- this machine reaches both pods through the host routes (`KIND_HOST_ROUTE=1`);
- the gateway answers `/v1/models` through the printed URL (kind's port mapping on the control plane, wherever
  the gateway pod runs).
The cluster's start is timed. Nothing is simulated: two node containers, their kubelets, containerd, kube-proxy
and CoreDNS. It needs a second cluster next to none other (one kind cluster at a time on a 2-core machine), so it
runs in `make bench`, not in `make test`, whose session has its one single-node cluster.

Run: `python -m perf.kind_nodes --out results/bench/kind-nodes.json` (repository root, root user); exit 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from testbed.kind import KindCluster, KindOptions, start, stop
from testbed.wait import wait_for

CLUSTER = "kubeinfer-nodes-bench"
GATEWAY_PORT = 30085
#: Apart from a user's cluster (10.244.0.0/16) and the test session's (10.245.0.0/16): the host routes are global.
POD_SUBNET = "10.247.0.0/16"
NAMESPACE = "nodes-check"
IMAGE = "ghcr.io/kubeinfer/kubeinfer:0.1.0"
PORT = 8080
#: Requests to the Service; with two endpoints, the chance one of them never answers is 2 x 2^-24.
SERVICE_REQUESTS = 24

SERVE = f"mkdir -p /tmp/www && echo $HOSTNAME > /tmp/www/name && cd /tmp/www && exec python -m http.server {PORT}"


def echo_pod(name: str, node: str) -> dict[str, Any]:
    """A pod pinned to `node` serving its own name at /name and logging each caller's address."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "echo"}},
        "spec": {
            "nodeName": node,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "echo",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", SERVE],
                    "ports": [{"containerPort": PORT}],
                    "readinessProbe": {"httpGet": {"path": "/name", "port": PORT}, "periodSeconds": 1},
                }
            ],
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": NAMESPACE},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": PORT, "targetPort": PORT}]},
    }


def fetch_in(cluster: KindCluster, pod: str, url: str) -> str:
    """GET `url` from inside `pod` (its own network namespace) and return the body."""
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode().strip())"
    return cluster.kubectl("exec", "-n", NAMESPACE, pod, "--", "python", "-c", code).stdout.strip()


def check_network(cluster: KindCluster, ranges: dict[str, str], result: dict[str, Any]) -> dict[str, bool]:
    """Each check's outcome by name; the pods it ran (node, address) go into `result`."""
    nodes = list(ranges)
    pods = {f"echo-{i}": node for i, node in enumerate(nodes)}
    cluster.kubectl("create", "namespace", NAMESPACE)
    manifests = [echo_pod(name, node) for name, node in pods.items()] + [service()]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
    cluster.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "pod", "-l", "app=echo", "--timeout=300s")
    ips = {name: cluster.get_json("pod", name, "-n", NAMESPACE)["status"]["podIP"] for name in pods}
    checks: dict[str, bool] = {}
    for name, node in pods.items():
        checks[f"{name} address in {node}'s range"] = ipaddress.ip_address(ips[name]) in ipaddress.ip_network(
            ranges[node]
        )
    names = list(pods)
    for caller, callee in ((names[0], names[1]), (names[1], names[0])):
        answer = fetch_in(cluster, caller, f"http://{ips[callee]}:{PORT}/name")
        checks[f"{caller} reaches {callee} across the nodes"] = answer == callee
        logs = cluster.kubectl("logs", "-n", NAMESPACE, callee).stdout
        checks[f"{callee} sees {caller}'s own address"] = f"{ips[caller]} - - " in logs
    url = f"http://echo.{NAMESPACE}.svc.cluster.local:{PORT}/name"
    loop = f"[urllib.request.urlopen({url!r}, timeout=10).read().decode().strip() for _ in range({SERVICE_REQUESTS})]"
    code = f"import urllib.request; print(' '.join(sorted(set({loop}))))"
    answered = cluster.kubectl("exec", "-n", NAMESPACE, names[0], "--", "python", "-c", code).stdout.split()
    checks["the Service by DNS answers from both nodes' pods"] = sorted(answered) == sorted(names)
    for name in names:
        body = httpx.get(f"http://{ips[name]}:{PORT}/name", timeout=10).text.strip()
        checks[f"this machine reaches {name} through the host route"] = body == name
    result["pods"] = {name: {"node": pods[name], "ip": ips[name]} for name in names}
    return checks


def check_gateway(cluster: KindCluster) -> dict[str, Any] | None:
    """The gateway's answer to `/v1/models` through the printed URL; None until it answers 200."""
    try:
        response = httpx.get(
            f"{cluster.base_url}/models", headers={"Authorization": f"Bearer {cluster.api_key}"}, timeout=30
        )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    gateway = cluster.get_json("pods", "-n", "kubeinfer", "-l", "app.kubernetes.io/component=gateway")["items"]
    return {
        "models": [m["id"] for m in response.json().get("data", [])],
        "gateway_nodes": sorted({p["spec"].get("nodeName") for p in gateway}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("results/bench/kind-nodes.json"))
    args = parser.parse_args()
    options = KindOptions(workers=1, host_route=True, pod_subnet=POD_SUBNET)
    result: dict[str, Any] = {"load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="kubeinfer-nodes-bench-") as tmp:
        work = Path(tmp)
        state, log = work / "kind-state", work / "kind.log"
        stop(CLUSTER, state, GATEWAY_PORT, log, options)
        started = time.monotonic()
        cluster = start(CLUSTER, state, GATEWAY_PORT, log, options)
        try:
            result["cluster_start_seconds"] = round(time.monotonic() - started, 1)
            nodes = cluster.get_json("nodes")["items"]
            result["nodes"] = {n["metadata"]["name"]: n["status"]["nodeInfo"]["containerRuntimeVersion"] for n in nodes}
            ranges = node_ranges(cluster, state)
            result["ranges"] = ranges
            checks = check_network(cluster, ranges, result)
            try:
                result["gateway"] = wait_for(lambda: check_gateway(cluster), timeout=120, what="the gateway answers")
            except AssertionError as exc:
                result["gateway"] = {"error": str(exc)}
        finally:
            result["kind_log_tail"] = log.read_text().splitlines()[-15:]
            stop(CLUSTER, state, GATEWAY_PORT, log, options)
    checks["the gateway answers /v1/models through the printed URL"] = "error" not in result["gateway"]
    result["checks"] = checks
    result["passed"] = all(checks.values())
    result["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201
    return 0 if result["passed"] else 1


def node_ranges(cluster: KindCluster, state: Path) -> dict[str, str]:
    """Each node's pod range, from the CNI file kind-up mounted into it (bridge.sh)."""
    ranges = {}
    for path in sorted((state / "cni").glob("*.conflist")):
        config = json.loads(path.read_text())
        bridge = next(p for p in config["plugins"] if p["type"] == "bridge")
        ranges[path.stem] = bridge["ipam"]["ranges"][0][0]["subnet"]
    names = {n["metadata"]["name"] for n in cluster.get_json("nodes")["items"]}
    assert set(ranges) == names, f"CNI files {sorted(ranges)} for nodes {sorted(names)}"
    return ranges


if __name__ == "__main__":
    raise SystemExit(main())
