"""The kind tier's own tests: the chart `make kind-up` installs, used as a user would (kubectl, the openai client
through the printed URL). They share the session's cluster (tests/cluster/conftest.py)."""

from __future__ import annotations

import pytest

from testbed.kind import KindCluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/kind/" in str(item.path):
            item.add_marker(pytest.mark.kind)


@pytest.fixture(scope="session")
def kind_cluster(kube_cluster: KindCluster) -> KindCluster:
    return kube_cluster
