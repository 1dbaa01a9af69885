"""The stand-in's kubelet log endpoint behind the real API server, and a supervised server's memory via pod proxy.

`kubectl logs` and `read_namespaced_pod_log` reach the stand-in exactly as they reach a kubelet: the API
server dials the node's address at its advertised kubelet port. Reading `GET /memory` of a pod through the
API server's pod proxy is how `kubeinfer workers status` gets a supervised server's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hack.kubelet_standin import StandIn
from kubeinfer.cluster.workers import ClusterWorkers
from testbed.controlplane import Cluster
from testbed.namespace_env import scratch_namespace
from testbed.wait import wait_for

IMAGE = "ghcr.io/kubeinfer/kubeinfer:dev"
LOCAL = {
    "nodeSelector": {"kubeinfer.dev/pool": "local"},
    "tolerations": [{"key": "kubeinfer.dev/pool", "operator": "Equal", "value": "local", "effect": "NoSchedule"}],
}
COUNTER = "import time\nfor i in range(100000):\n    print(i, flush=True)\n    time.sleep(0.1)"


@pytest.fixture(scope="module")
def api(kube_cluster: Cluster) -> client.ApiClient:
    return config.new_client_from_config(str(kube_cluster.kubeconfig))


@pytest.fixture
def namespace(kube_cluster: Cluster, local_node: StandIn) -> Iterator[str]:
    """A namespace per test; deleting it at the end makes the stand-in stop whatever the test left running."""
    with scratch_namespace(kube_cluster, "standin-logs") as name:
        yield name


def run_pod(core: client.CoreV1Api, namespace: str, name: str, command: list[str], **extra: Any) -> None:
    container = {"name": "main", "image": IMAGE, "command": command, **extra.pop("container", {})}
    pod = {"metadata": {"name": name, **extra}, "spec": {**LOCAL, "containers": [container]}}
    core.create_namespaced_pod(namespace, pod)


def pod_log(core: client.CoreV1Api, namespace: str, name: str, **params: Any) -> str:
    """The pod's log as text; the client gives None, not "", for a log with nothing in it yet."""
    text: str | None = core.read_namespaced_pod_log(name, namespace, **params)
    return text or ""


def log_numbers(text: str) -> list[int]:
    return [int(line) for line in text.splitlines() if line.strip().isdigit()]


def test_pod_logs_tail_and_follow_through_the_api_server(
    api: client.ApiClient, kube_cluster: Cluster, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    run_pod(core, namespace, "counter", ["python", "-c", COUNTER])

    def counted() -> list[int] | None:
        try:
            numbers = log_numbers(pod_log(core, namespace, "counter"))
        except ApiException:
            return None
        return numbers if len(numbers) >= 5 else None

    wait_for(counted, timeout=60, what="the counter's log through the API server")
    last_two = log_numbers(pod_log(core, namespace, "counter", tail_lines=2))
    assert len(last_two) == 2
    assert last_two[1] == last_two[0] + 1
    kubectl = kube_cluster.kubectl("logs", "counter", "-n", namespace, "--tail=1")
    assert len(log_numbers(kubectl.stdout)) == 1

    stream = core.read_namespaced_pod_log("counter", namespace, follow=True, tail_lines=1, _preload_content=False)
    seen: list[int] = []
    for chunk in stream.stream(64):
        seen += log_numbers(chunk.decode())
        if len(seen) >= 5:
            break
    stream.release_conn()
    assert seen == list(range(seen[0], seen[0] + len(seen)))


def test_supervised_server_memory_is_read_through_the_pod_proxy(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    labels = {"app.kubernetes.io/managed-by": "kubeinfer", "kubeinfer.dev/component": "server"}
    command = ["kubeinfer", "engine", "serve", "--memory-port", "8081", "--memory-host", "0.0.0.0", "--"]
    run_pod(
        core,
        namespace,
        "supervised",
        [*command, "python", "-c", "import time\nblob = b'x' * (64 << 20)\ntime.sleep(3600)"],
        labels=labels,
        container={"ports": [{"name": "memory", "containerPort": 8081}]},
    )
    ops = ClusterWorkers(namespace, api)

    def sampled() -> Any:
        (server,) = ops.status()
        return server if server.memory_bytes and server.memory_bytes > 64 << 20 else None

    server = wait_for(sampled, timeout=60, what="memory of the supervised pod")
    assert server.kind == "server"
    assert server.state == "Running"
