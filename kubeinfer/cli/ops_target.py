"""Where `kubeinfer batch` and `kubeinfer workers` act: a cluster namespace through its API, or a gateway.

The same options on every such command, as kubectl and the OpenAI client spell them:

- cluster: `-n/--namespace` (or KUBEINFER_NAMESPACE), `--context`, `--kubeconfig`; any of them selects the
  cluster, and the namespace defaults to the kubeconfig context's;
- gateway: `--base-url` (OPENAI_BASE_URL) with `--api-key` (OPENAI_API_KEY).

With neither, a gateway URL in the environment wins, else a kubeconfig that is there ($KUBECONFIG or
~/.kube/config), as `kubectl kubeinfer ...` expects. A command takes `t: Target` and `@targeted` gives it
these options and the Target they name.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from kubeinfer.cli.common import fail
from kubeinfer.cli.output import Output, OutputOpt, print_json

__all__ = [
    "ApiKey",
    "BaseUrl",
    "Context",
    "Kubeconfig",
    "Namespace",
    "Output",
    "OutputOpt",
    "Target",
    "ago",
    "checked",
    "cluster_errors",
    "gateway_errors",
    "print_json",
    "size",
    "target",
    "targeted",
]

Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        envvar="KUBEINFER_NAMESPACE",
        help="Cluster namespace (default: the kubeconfig context's)",
        rich_help_panel="Target",
    ),
]
Context = Annotated[
    str | None, typer.Option(help="Kubeconfig context (default: the current one)", rich_help_panel="Target")
]
Kubeconfig = Annotated[
    Path | None,
    typer.Option(help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)", rich_help_panel="Target"),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(envvar="OPENAI_BASE_URL", help="Gateway URL, e.g. http://127.0.0.1:8080/v1", rich_help_panel="Target"),
]
ApiKey = Annotated[
    str | None, typer.Option(envvar="OPENAI_API_KEY", help="API key of your project", rich_help_panel="Target")
]
GATEWAY_TIMEOUT = 30.0
NO_TARGET = (
    "no target: pass --namespace/--context (or set KUBEINFER_NAMESPACE) for a cluster, "
    "or --base-url (or OPENAI_BASE_URL) for a gateway"
)


def _kubeconfig_found() -> Path | None:
    """The first file of $KUBECONFIG, else ~/.kube/config, when there is one.

    Read at call time: the kubernetes client reads $KUBECONFIG once, when it is first imported.
    """
    listed = [Path(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates = listed or [Path.home() / ".kube" / "config"]
    return next((p for p in candidates if p.is_file()), None)


@dataclass
class Target:
    namespace: str | None
    kubeconfig: Path | None
    base_url: str | None
    api_key: str | None
    context: str | None = None

    @property
    def cluster(self) -> bool:
        return self.namespace is not None

    def api_client(self) -> Any:
        from kubeinfer.kube.client import api_client
        from kubeinfer.kube.errors import ClusterError

        try:
            return api_client(self.kubeconfig, self.context)
        except ClusterError as exc:
            fail(str(exc))

    def gateway(self) -> httpx.Client:
        if not self.base_url:
            fail(NO_TARGET)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(base_url=self.base_url.rstrip("/"), headers=headers, timeout=GATEWAY_TIMEOUT)


def target(
    namespace: str | None,
    kubeconfig: Path | None,
    base_url: str | None,
    api_key: str | None,
    context: str | None = None,
) -> Target:
    """The cluster when a cluster option is given, else the gateway when a URL is, else a kubeconfig found."""
    explicit_cluster = bool(namespace or context or kubeconfig)
    found = _kubeconfig_found()
    if explicit_cluster or (not base_url and found is not None):
        kubeconfig = kubeconfig or found
        if not namespace:
            namespace = _default_namespace(kubeconfig, context)
        return Target(namespace, kubeconfig, None, None, context)
    return Target(None, None, base_url or None, api_key, None)


#: The target options in the order every command lists them, after its own.
TARGET_OPTIONS = (
    ("namespace", Namespace),
    ("context", Context),
    ("kubeconfig", Kubeconfig),
    ("base_url", BaseUrl),
    ("api_key", ApiKey),
)


def targeted(command: Callable[..., None]) -> Callable[..., None]:
    """The command with the five target options in place of its `t: Target` parameter.

    Typer reads a command's options from its signature, and a group callback would move them before the
    command's name (`batch -n ns list`); so the options are appended to the signature here, once, and the
    command gets the Target they resolve to.
    """
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "t"]
    if len(own) == len(signature.parameters) or signature.parameters["t"].annotation is not Target:
        raise TypeError(f"{command.__name__} needs a parameter `t: Target`")
    options = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a) for n, a in TARGET_OPTIONS
    ]

    @functools.wraps(command)
    def run(
        *args: Any,
        namespace: str | None = None,
        context: str | None = None,
        kubeconfig: Path | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        command(*args, t=target(namespace, kubeconfig, base_url, api_key, context), **kwargs)

    # inspect.signature prefers __signature__ to __wrapped__, and typing.get_type_hints reads __annotations__.
    run.__signature__ = signature.replace(parameters=[*own, *options])  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in [*own, *options]} | {"return": None}
    return run


def _default_namespace(kubeconfig: Path | None, context: str | None) -> str:
    from kubeinfer.kube.client import default_namespace

    return default_namespace(kubeconfig, context)


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


def ago(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    seconds = max(0, int(time.time() - stamp))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def when(stamp: float | None) -> str:
    """A Unix time as local `YYYY-MM-DD HH:MM:SS`, for tables."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def size(count: int | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(count)
