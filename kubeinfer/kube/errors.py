"""One vocabulary of failures for every request to the API server, each saying which object and why."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ClusterError(RuntimeError):
    """A request to the API server failed in a way the user can act on; the message says how."""


class NoConfiguration(ClusterError):
    """No kubeconfig, a broken one, and not inside a pod either."""


class ClusterUnreachable(ClusterError):
    """The API server did not answer."""


class Forbidden(ClusterError):
    """The API server refused the request (401 or 403)."""


class NotFound(ClusterError, LookupError):
    """The object does not exist (or, for the console, belongs to another project: the two are not told apart)."""


class Conflict(ClusterError):
    """The object already exists, or changed since it was read (409)."""


class Invalid(ClusterError):
    """The API server's own validation refused the object (422)."""


def api_errors() -> tuple[type[Exception], ...]:
    """What a request can raise: the client's ApiException, urllib3's connection errors, the socket's."""
    import urllib3
    from kubernetes.client import ApiException

    return (ApiException, urllib3.exceptions.HTTPError, OSError)


def reason_of(exc: Any) -> str:
    """The API server's own message from an ApiException's Status body, else its HTTP reason."""
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def translate(exc: Exception, what: str, server: str | None = None) -> ClusterError:
    """An ApiException or a connection error as the ClusterError a user can act on."""
    from kubernetes.client import ApiException

    if isinstance(exc, ApiException):
        status = exc.status
        if status == 404:
            return NotFound(f"{what} not found")
        if status in (401, 403):
            return Forbidden(f"{what}: the API server refused the request ({status} {reason_of(exc)})")
        if status == 409:
            return Conflict(f"{what}: {reason_of(exc)}")
        if status == 422:
            return Invalid(f"{what}: {reason_of(exc)}")
        return ClusterError(f"{what}: the API server answered HTTP {status}: {reason_of(exc)}")
    where = f" at {server}" if server else ""
    cause = getattr(exc, "reason", None) or exc
    return ClusterUnreachable(f"cannot reach the Kubernetes API server{where} ({what}): {cause}")


def call(request: Callable[[], T], what: str, server: str | None = None) -> T:
    """Run one API request; its failures become the ClusterError naming `what` was asked for."""
    try:
        return request()
    except api_errors() as exc:
        raise translate(exc, what, server) from exc
