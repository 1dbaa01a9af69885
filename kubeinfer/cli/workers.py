"""`kubeinfer workers`: model servers and batch workers, their logs and restart, embedded or in a cluster."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.table import Table

from kubeinfer.cli.common import console
from kubeinfer.cli.ops_target import (
    ApiKey,
    BaseUrl,
    Kubeconfig,
    Namespace,
    Output,
    OutputOpt,
    Target,
    ago,
    checked,
    cluster_errors,
    gateway_errors,
    print_json,
    size,
    target,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Model servers and batch workers.")

Name = Annotated[str, typer.Argument(help="Worker name, as `kubeinfer workers status` shows it")]


def _cluster(t: Target) -> Any:
    from kubeinfer.cluster.workers import ClusterWorkers

    assert t.namespace is not None
    return ClusterWorkers(t.namespace, t.api_client())


def _progress(w: dict[str, Any]) -> str:
    if w.get("total") is None:
        return "-"
    return f"{w.get('done') or 0}/{w['total']}"


def _table(workers: list[dict[str, Any]]) -> Table:
    table = Table("NAME", "KIND", "MODEL", "STATE", "READY", "RESTARTS", "HEARTBEAT", "MEMORY", "PROGRESS", "DETAIL")
    for w in workers:
        table.add_row(
            w["name"],
            w["kind"],
            w.get("model") or "-",
            w["state"],
            "yes" if w.get("ready") else "no",
            str(w.get("restarts", 0)),
            ago(w.get("last_heartbeat")),
            size(w.get("memory_bytes")),
            _progress(w),
            w.get("detail") or "",
        )
    return table


@app.command()
def status(
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    output: OutputOpt = Output.table,
) -> None:
    """Servers and workers with model, state, last heartbeat and memory."""
    t = target(namespace, kubeconfig, base_url, api_key)
    if t.cluster:
        with cluster_errors():
            ops = _cluster(t)
            ops.check_namespace()
            workers = [w.as_json() for w in ops.status()]
    else:
        with gateway_errors(t.base_url), t.gateway() as http:
            workers = checked(http.get("/ops/workers")).json()["data"]
    if output is Output.json:
        print_json(workers)
    elif not workers:
        console.print(f"no model servers or batch workers in namespace {t.namespace}")
    else:
        console.print(_table(workers))


def _write(chunks: Iterator[bytes]) -> None:
    try:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    except KeyboardInterrupt:
        pass


@app.command()
def logs(
    name: Name,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what it writes")] = False,
    tail: Annotated[int, typer.Option(min=0, max=10_000, help="Lines from the end to start with")] = 100,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Print a server's or worker's log (a pod's log in a cluster)."""
    t = target(namespace, kubeconfig, base_url, api_key)
    if t.cluster:
        with cluster_errors():
            _write(_cluster(t).logs(name, tail, follow))
        return
    params: dict[str, str | int] = {"tail": tail, "follow": str(follow).lower()}
    with gateway_errors(t.base_url), t.gateway() as http:
        with http.stream("GET", f"/ops/workers/{name}/logs", params=params, timeout=None) as response:
            _write(checked(response).iter_bytes())


@app.command()
def restart(
    name: Name,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    output: OutputOpt = Output.table,
) -> None:
    """Restart a server or worker: in a cluster its pod is deleted and its Deployment or Job replaces it."""
    t = target(namespace, kubeconfig, base_url, api_key)
    if t.cluster:
        with cluster_errors():
            uid = _cluster(t).restart(name)
        result: dict[str, Any] = {"name": name, "deleted_pod_uid": uid}
        message = f"deleted pod {name}; its Deployment or Job starts a replacement"
    else:
        with gateway_errors(t.base_url), t.gateway() as http:
            result = checked(http.post(f"/ops/workers/{name}/restart", timeout=600)).json()
        message = f"restarted {name}: {result['state']}, pid {result.get('pid')}"
    if output is Output.json:
        print_json(result)
    else:
        console.print(message)
