"""Cluster-tier fixtures: one real kind cluster per session, made by the script behind `make kind-up`.

What is real: kind's node (a podman or Docker container) with systemd, containerd, runc and the kubelet v1.35.4;
the control plane, kube-proxy, CoreDNS and local-path storage; the kubeinfer and llama-server images built by
`make images`, run as containers with their memory limits, probes and restarts; the chart installed with helm
into namespace `kubeinfer` (its operator watches only that namespace).

What is simulated: kwok, running as a Deployment in the cluster, fakes two CPU and two GPU nodes (placement
tests only; nothing runs on them, and each carries its pool's taint so only pods meant for that pool bind there).

How the tests reach it: most tests run kubeinfer's operator and gateway as processes of this machine (so a test
can SIGKILL and restart them, and a code change needs no image rebuild), each in its own namespace, against the
cluster's API server; the pods they start run in the cluster from the images. This machine reaches pod IPs
through a route to the node that the script adds and removes (pod subnet 10.245.0.0/16, apart from a user's
`make kind-up` cluster), and a scratch folder is mounted into the node at the same path, so a hostPath
volume names the same folder in a pod and in a test (testbed/kind.py, `cluster_options`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeinfer.settings import Settings
from testbed import kind

CLUSTER_NAME = "kubeinfer-test"
#: The test cluster's gateway port on 127.0.0.1; `make kind-up`'s default cluster uses 30080.
GATEWAY_PORT = int(os.environ.get("KUBEINFER_TEST_KIND_PORT", "30081"))
#: KUBEINFER_KEEP_KIND=1 keeps the cluster after the session and reuses it in the next one: its state and shared
#: folders then have fixed paths (a kind node's mounts are fixed when it is created).
KEEP = os.environ.get("KUBEINFER_KEEP_KIND") == "1"
KEPT_SHARED_DIR = Path("/tmp/kubeinfer-kind-kept")
KEPT_STATE_DIR = Path("/tmp/kubeinfer-kind-kept-state")


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """A scratch folder of this machine mounted into the kind node at the same path (deleted at session end).

    Outside pytest's own temporary folder, which is private to root (0700): pods run as uid 10001 and must
    traverse to the folders of their hostPath volumes.
    """
    if KEEP:
        KEPT_SHARED_DIR.mkdir(mode=0o755, exist_ok=True)
        yield KEPT_SHARED_DIR
        return
    path = Path(tempfile.mkdtemp(prefix="kubeinfer-kind-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_models_root(shared_dir: Path, settings: Settings) -> Path:
    """The model cache of the cluster tier: a copy of the cached SmolLM2 ladder in the shared folder.

    A copy, not the user's cache: pods write into it (downloads, quantizations) as uid 10001, and nothing a test
    does there may change `~/.cache/kubeinfer`.
    """
    return kind.seed_models(settings.models_root, shared_dir / "models")


@pytest.fixture(scope="session")
def batch_data_dir(shared_dir: Path) -> Path:
    """The shared batch store of the cluster tier (the `kubeinfer-data` claim's folder)."""
    return kind.pod_writable(shared_dir / "batch-data")


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Iterator[kind.KindCluster]:
    """`hack/kind/cluster.sh up` with its own name, port, pod subnet and state folder; deleted at session end.

    Cold, this builds the node image and the images (about 25 minutes on 2 cores); warm, it creates the
    cluster and installs the chart in about 3. KUBEINFER_KEEP_KIND=1 keeps the cluster (and a later session
    with the same variable reuses it) for debugging.
    """
    state = tmp_path_factory.mktemp("kind")
    state_dir = KEPT_STATE_DIR if KEEP else state / "state"
    with kind.running_test_cluster(
        CLUSTER_NAME, shared_dir, state_dir, GATEWAY_PORT, state / "cluster.log", keep=KEEP
    ) as cluster:
        yield cluster
