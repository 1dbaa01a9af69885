"""Where `kubeinfer workers` and `kubeinfer batches` act: a cluster namespace through its API, or a gateway.

`--namespace` (or KUBEINFER_NAMESPACE) selects a cluster; otherwise the gateway at `--base-url`
(OPENAI_BASE_URL) with `--api-key` (OPENAI_API_KEY), as `kubeinfer batch` does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from kubeinfer.cli.common import fail

Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", envvar="KUBEINFER_NAMESPACE", help="Act on this cluster namespace"),
]
Kubeconfig = Annotated[
    Path | None, typer.Option(envvar="KUBECONFIG", help="Kubeconfig for --namespace (default ~/.kube/config)")
]
BaseUrl = Annotated[
    str | None, typer.Option(envvar="OPENAI_BASE_URL", help="Gateway URL, e.g. http://127.0.0.1:8080/v1")
]
ApiKey = Annotated[str | None, typer.Option(envvar="OPENAI_API_KEY", help="API key of your project")]
GATEWAY_TIMEOUT = 30.0


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table, or json for scripts")]


@dataclass
class Target:
    namespace: str | None
    kubeconfig: Path | None
    base_url: str | None
    api_key: str | None

    @property
    def cluster(self) -> bool:
        return self.namespace is not None

    def api_client(self) -> Any:
        from kubeinfer.kube.client import api_client
        from kubeinfer.kube.errors import ClusterError

        try:
            return api_client(self.kubeconfig)
        except ClusterError as exc:
            fail(str(exc))

    def gateway(self) -> httpx.Client:
        if not self.base_url:
            fail(
                "no target: pass --namespace (or set KUBEINFER_NAMESPACE) for a cluster, "
                "or --base-url (or OPENAI_BASE_URL) for a gateway"
            )
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(base_url=self.base_url.rstrip("/"), headers=headers, timeout=GATEWAY_TIMEOUT)


def target(namespace: str | None, kubeconfig: Path | None, base_url: str | None, api_key: str | None) -> Target:
    return Target(namespace, kubeconfig, base_url, api_key)


@contextmanager
def cluster_errors() -> Iterator[None]:
    """A ClusterError as one line and exit code 1, instead of a traceback."""
    from kubeinfer.kube.errors import ClusterError

    try:
        yield
    except ClusterError as exc:
        fail(str(exc))


def gateway_error(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:500] or response.reason_phrase
    return f"HTTP {response.status_code}: {message}"


@contextmanager
def gateway_errors(base_url: str | None) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        fail(f"cannot reach the gateway at {base_url}: {exc}")


def checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        response.read()
        fail(gateway_error(response))
    return response


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping), for scripts."""
    typer.echo(json.dumps(data, indent=2))


def ago(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    seconds = max(0, int(time.time() - stamp))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def size(count: int | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(count)
