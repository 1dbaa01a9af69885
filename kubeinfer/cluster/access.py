"""API access and project scoping shared by the console's cluster reads (BenchmarkMatrices, ModelInstalls).

A cluster object belongs to a project when it carries the `kubeinfer.dev/project` label (the label the
gateway puts on BatchJobs and on ModelInstalls it creates); an object without the label was applied by
someone with cluster access and is shared by every project.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

GROUP, VERSION = "kubeinfer.dev", "v1alpha1"
PROJECT_LABEL = "kubeinfer.dev/project"
#: (connect, read) seconds: a page waits seconds, not minutes, for an unreachable API server.
REQUEST_TIMEOUT = (5, 30)
T = TypeVar("T")


class ClusterError(RuntimeError):
    """A request to the API server failed; the message says which object and why."""


class ObjectNotFound(ClusterError):
    """The object does not exist, or belongs to another project (the two are not told apart)."""


@cache
def api_client() -> Any:
    """One client for the process, from $KUBECONFIG, ~/.kube/config or the pod's service account."""
    from kubernetes import client, config

    try:
        config.load_config()
    except (config.ConfigException, OSError, ValueError) as exc:
        raise ClusterError(f"cannot load a Kubernetes configuration: {exc}") from exc
    return client.ApiClient()


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


def call(request: Callable[[], T], what: str) -> T:
    """Run one API request; turn its failures into a ClusterError naming `what` was asked for."""
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    try:
        return request()
    except client.ApiException as exc:
        if exc.status == 404:
            raise ObjectNotFound(f"{what}: not found") from exc
        if exc.status in (401, 403):
            raise ClusterError(f"{what}: the API server refused the gateway ({exc.status} {exc.reason})") from exc
        raise ClusterError(f"{what}: the API server answered {exc.status} {exc.reason}") from exc
    except (HTTPError, OSError) as exc:
        raise ClusterError(f"{what}: cannot reach the API server ({getattr(exc, 'reason', None) or exc})") from exc
