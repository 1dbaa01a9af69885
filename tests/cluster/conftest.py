"""Cluster-tier fixtures: the kwokctl control plane and the kubelet stand-in, built and started once per session.

Subfolders with their own conftest (tests/cluster/kind) bring their own cluster; nothing here starts for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.controlplane import Cluster, build_binaries, running_cluster

KUBE_FIXTURE = "kube_cluster"
HERE = Path(__file__).parent


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the control plane before any test starts when one needs it.

    A cold build takes several minutes; doing it here keeps it outside the per-test timeout, and
    never skips: a build failure stops the session with the build's own output.
    """
    if session.config.option.collectonly:
        return
    if any(item.path.parent == HERE and KUBE_FIXTURE in getattr(item, "fixturenames", ()) for item in session.items):
        build_binaries()


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) with the node pools.

    The stand-in's pod bridge comes up first: kwokctl puts the host's addresses into the API server's
    certificate when it creates the cluster, and pods reach the API server at the bridge address. Clients
    that honour `tls-server-name` would not care, but kopf's (aiohttp) does not read it.
    """
    from hack.kubelet_standin.network import ensure_bridge

    ensure_bridge()
    with running_cluster("kubeinfer-test", tmp_path_factory.mktemp("kube-cluster")) as cluster:
        yield cluster


# --- the kubelet stand-in for local-exec (hack/kubelet_standin, docs/kubelet-standin.md) -------------------------
from hack.kubelet_standin import StandIn, start_standin  # noqa: E402
from testbed.wait import wait_for  # noqa: E402

LOCAL_NODE = "local-exec"


def _local_node_schedulable(cluster: Cluster) -> bool:
    """Ready, and the node controller has lifted the not-ready/unreachable taints it put on while nobody heartbeat."""
    node = cluster.get_json("node", LOCAL_NODE)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
    taints = [t["key"] for t in node["spec"].get("taints", []) if t["key"].startswith("node.kubernetes.io/")]
    return ready and not taints


@pytest.fixture(scope="session")
def local_node(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """The kubelet stand-in running local-exec's pods as local processes; stopped (nothing left) at session end."""
    standin = start_standin(kube_cluster.kubeconfig, LOCAL_NODE, tmp_path_factory.mktemp("standin"))
    try:
        wait_for(lambda: _local_node_schedulable(kube_cluster), timeout=90, what=f"{LOCAL_NODE} Ready and untainted")
        yield standin
    finally:
        standin.stop()
