"""Integration fixtures: the local Kubernetes control plane, built and started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.cluster import Cluster, build_binaries, running_cluster

KUBE_FIXTURE = "kube_cluster"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the control plane before any test starts when one needs it.

    A cold build takes several minutes; doing it here keeps it outside the per-test timeout, and
    never skips: a build failure stops the session with the build's own output.
    """
    if session.config.option.collectonly:
        return
    if any(KUBE_FIXTURE in getattr(item, "fixturenames", ()) for item in session.items):
        build_binaries()


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) with the node pools."""
    with running_cluster("kubeinfer-test", tmp_path_factory.mktemp("kube-cluster")) as cluster:
        yield cluster
