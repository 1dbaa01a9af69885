"""API access and project scoping shared by the console's cluster reads (BenchmarkMatrices, ModelInstalls).

A cluster object belongs to a project when it carries the `kubeinfer.dev/project` label (the label the
gateway puts on BatchJobs and on ModelInstalls it creates); an object without the label was applied by
someone with cluster access and is shared by every project.
"""

from __future__ import annotations

from typing import Any

from kubeinfer.kube.client import api_client
from kubeinfer.resources.names import PROJECT_LABEL

#: (connect, read) seconds: a page waits seconds, not minutes, for an unreachable API server.
REQUEST_TIMEOUT = (5, 30)


def custom_objects() -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api_client())


def core() -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client())


def project_of(body: dict[str, Any]) -> str | None:
    labels: dict[str, str] = (body.get("metadata") or {}).get("labels") or {}
    return labels.get(PROJECT_LABEL)


def visible_to(body: dict[str, Any], project: str) -> bool:
    """Labelled objects are their project's; unlabelled ones are shared."""
    owner = project_of(body)
    return owner is None or owner == project
