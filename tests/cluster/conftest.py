"""Cluster-tier fixtures: the kwokctl control plane and the kubelet stand-in, built and started once per session.

Subfolders with their own conftest (tests/cluster/kind) bring their own cluster; nothing here starts for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.kubelet_standin import StandIn
from hack.kubelet_standin.network import ensure_bridge
from testbed.controlplane import Cluster, build_binaries, running_cluster
from testbed.local_node import running_local_node

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
    ensure_bridge()
    with running_cluster("kubeinfer-test", tmp_path_factory.mktemp("kube-cluster")) as cluster:
        yield cluster


# --- the kubelet stand-in for local-exec (hack/kubelet_standin, docs/kubelet-standin.md) -------------------------


@pytest.fixture(scope="session")
def local_node(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """The kubelet stand-in running local-exec's pods as local processes; stopped (nothing left) at session end."""
    with running_local_node(kube_cluster, tmp_path_factory.mktemp("standin")) as standin:
        yield standin
