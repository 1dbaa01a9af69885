"""Console logs in cluster mode: the namespace's model-server and worker pods, read through the API server.

A pod log's id is `pod/<name>`; the name is only ever looked up as a pod that kubeinfer owns in the
gateway's own namespace (kubeinfer/cluster/workers.py refuses any other), never turned into a path.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import PurePosixPath

from kubeinfer.cluster.workers import ClusterWorkers, NotOwned, WorkerStatus
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.ui.errors import PageNotFound
from kubeinfer.gateway.ui.logtail import LogFile
from kubeinfer.kube.client import api_client
from kubeinfer.kube.errors import ClusterError, NotFound

PREFIX = "pod/"
#: Lines read from the API for a search; a plain tail reads only the lines shown.
SEARCH_LINES = 20_000


@cache
def _workers(namespace: str) -> ClusterWorkers:
    return ClusterWorkers(namespace, api_client())


def pod_name(log_id: str) -> str | None:
    return log_id[len(PREFIX) :] if log_id.startswith(PREFIX) else None


def listing(namespace: str | None) -> tuple[list[WorkerStatus], str | None]:
    """The pods to list, or why they cannot be listed (shown on the page instead of failing it)."""
    if namespace is None:
        return [], None
    try:
        return _workers(namespace).status(), None
    except ClusterError as exc:
        return [], str(exc)


def log_file(namespace: str, name: str) -> LogFile:
    """What the log page shows as the log's name and source; the path is only a name here."""
    return LogFile(f"{PREFIX}{name}", f"pod in namespace {namespace}", PurePosixPath(name))  # type: ignore[arg-type]


def _read(namespace: str, name: str, lines: int | None) -> Iterator[bytes]:
    try:
        return _workers(namespace).logs(name, lines)
    except (NotFound, NotOwned) as exc:
        raise PageNotFound(str(exc)) from None
    except ClusterError as exc:
        raise ApiError(502, str(exc), "cluster_error") from None


def lines(namespace: str, name: str, count: int, searching: bool) -> list[str]:
    text = b"".join(_read(namespace, name, SEARCH_LINES if searching else count))
    return text.decode("utf-8", errors="replace").splitlines()


def download(namespace: str, name: str) -> Iterator[bytes]:
    return _read(namespace, name, None)
