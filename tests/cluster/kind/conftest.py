"""The kind tier: one real kind cluster per session, made by the same script as `make kind-up`.

What is real here: kind's node (a container of podman or Docker) with systemd, containerd, runc and the kubelet
v1.35.4; kube-proxy, CoreDNS and local-path storage; the kubeinfer and llama-server images built by `make images`
and run as containers; the chart installed with helm; the operator and gateway as the chart's pods. Nothing is
simulated in this tier. Traffic goes only to 127.0.0.1 (the gateway's NodePort mapped by kind) and to the
cluster's own pod and Service addresses, from pods inside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from testbed import kind

CLUSTER_NAME = "kubeinfer-test"
#: The test cluster's gateway port on 127.0.0.1; `make kind-up`'s default cluster uses 30080.
GATEWAY_PORT = int(os.environ.get("KUBEINFER_TEST_KIND_PORT", "30081"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/kind/" in str(item.path):
            item.add_marker(pytest.mark.kind)


@pytest.fixture(scope="package")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kind.KindCluster]:
    """`hack/kind/cluster.sh up` with its own name, port and state folder; deleted after this folder's tests, so
    its containers (a llama-server among them) are gone before the rest of the session runs.

    Cold, this builds the node image and the images (about 15 minutes on 2 cores); warm, it creates the
    cluster and installs the chart in about 3. KUBEINFER_KEEP_KIND=1 keeps the cluster for debugging.
    """
    state = tmp_path_factory.mktemp("kind")
    log = state / "cluster.log"
    cluster = kind.start(CLUSTER_NAME, state / "state", GATEWAY_PORT, log)
    try:
        yield cluster
    finally:
        if os.environ.get("KUBEINFER_KEEP_KIND") != "1":
            kind.stop(CLUSTER_NAME, state / "state", GATEWAY_PORT, log)
