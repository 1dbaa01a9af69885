"""The `local-exec` node: the kubelet stand-in running its pods as processes on this machine.

kwok simulates the CPU and GPU pools (pods there are only marked Running); pods on `local-exec` really run,
through hack/kubelet_standin (docs/kubelet-standin.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hack.kubelet_standin import StandIn, start_standin
from hack.kubelet_standin.network import ensure_bridge
from testbed.controlplane import Cluster, running_cluster
from testbed.wait import wait_for

LOCAL_NODE = "local-exec"


def schedulable(cluster: Cluster) -> bool:
    """Ready, and the node controller has lifted the not-ready/unreachable taints it put on while nobody heartbeat."""
    node = cluster.get_json("node", LOCAL_NODE)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
    taints = [t["key"] for t in node["spec"].get("taints", []) if t["key"].startswith("node.kubernetes.io/")]
    return ready and not taints


@contextmanager
def running_local_node(cluster: Cluster, workdir: Path) -> Iterator[StandIn]:
    """The stand-in serving `local-exec` until the block ends; every pod process is stopped with it."""
    standin = start_standin(cluster.kubeconfig, LOCAL_NODE, workdir)
    try:
        wait_for(lambda: schedulable(cluster), timeout=90, what=f"{LOCAL_NODE} Ready and untainted")
        yield standin
    finally:
        standin.stop()


@contextmanager
def cluster_with_local_node(name: str, workdir: Path) -> Iterator[Cluster]:
    """A control plane named `name` under `workdir` with `local-exec` served, for scripts outside pytest.

    The stand-in's pod bridge comes up first: kwokctl puts the host's addresses into the API server's
    certificate when it creates the cluster, and pods reach the API server at the bridge address.
    """
    ensure_bridge()
    with running_cluster(name, workdir / "cluster") as cluster, running_local_node(cluster, workdir / "standin"):
        yield cluster
