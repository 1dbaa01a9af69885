"""`kubeinfer workers`: model servers and batch workers, their logs and restart, embedded or in a cluster."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.table import Table

from kubeinfer.cli.common import fail
from kubeinfer.cli.ops_target import (
    Output,
    OutputOpt,
    Target,
    ago,
    checked,
    cluster_errors,
    gateway_errors,
    size,
    targeted,
)
from kubeinfer.cli.output import emit

app = typer.Typer(no_args_is_help=True, help="Model servers and batch workers: list, get, logs, restart.")

Name = Annotated[str, typer.Argument(help="Worker name, as `kubeinfer workers status` shows it")]


def _cluster(t: Target) -> Any:
    from kubeinfer.cluster.workers import ClusterWorkers

    assert t.namespace is not None
    return ClusterWorkers(t.namespace, t.api_client())


def _progress(w: dict[str, Any]) -> str:
    if w.get("total") is None:
        return "-"
    return f"{w.get('done') or 0}/{w['total']}"


def _table(workers: list[dict[str, Any]], wide: bool) -> Table | str:
    if not workers:
        return "no model servers or batch workers"
    columns = ["NAME", "KIND", "MODEL", "STATE", "READY", "RESTARTS", "HEARTBEAT", "MEMORY", "PROGRESS"]
    table = Table(*columns, *(["BATCH", "DETAIL"] if wide else []))
    for w in workers:
        cells = [
            w["name"],
            w["kind"],
            w.get("model") or "-",
            w["state"],
            "yes" if w.get("ready") else "no",
            str(w.get("restarts", 0)),
            ago(w.get("last_heartbeat")),
            size(w.get("memory_bytes")),
            _progress(w),
        ]
        if wide:
            cells += [w.get("batch_id") or "-", w.get("detail") or ""]
        table.add_row(*cells)
    return table


def _workers(t: Target) -> list[dict[str, Any]]:
    if t.cluster:
        with cluster_errors():
            ops = _cluster(t)
            ops.check_namespace()
            return [w.as_json() for w in ops.status()]
    with gateway_errors(t.base_url), t.gateway() as http:
        found: list[dict[str, Any]] = checked(http.get("/ops/workers")).json()["data"]
    return found


@app.command("list")
@targeted
def list_workers(
    t: Target,
    output: OutputOpt = Output.table,
) -> None:
    """Servers and workers with model, state, last heartbeat and memory (-o wide: batch and detail)."""
    workers = _workers(t)
    emit(output, workers, names=[w["name"] for w in workers], table=lambda wide: _table(workers, wide))


@app.command()
@targeted
def get(
    t: Target,
    name: Name,
    output: OutputOpt = Output.table,
) -> None:
    """One server or worker, every field."""
    found = next((w for w in _workers(t) if w["name"] == name), None)
    if found is None:
        where = f"namespace {t.namespace}" if t.cluster else "the gateway"
        fail(f"no worker {name} in {where} (`kubeinfer workers list` shows them)")

    def table(_wide: bool) -> Table:
        shown = Table("FIELD", "VALUE", show_header=False)
        for key, value in found.items():
            if value is not None:
                shown.add_row(key, ago(value) if key == "last_heartbeat" else str(value))
        return shown

    emit(output, found, names=[name], table=table)


def _write(chunks: Iterator[bytes]) -> None:
    try:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    except KeyboardInterrupt:
        pass


@app.command()
@targeted
def logs(
    t: Target,
    name: Name,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what it writes")] = False,
    tail: Annotated[int, typer.Option(min=0, max=10_000, help="Lines from the end to start with")] = 100,
) -> None:
    """Print a server's or worker's log (a pod's log in a cluster)."""
    if t.cluster:
        with cluster_errors():
            _write(_cluster(t).logs(name, tail, follow))
        return
    params: dict[str, str | int] = {"tail": tail, "follow": str(follow).lower()}
    with gateway_errors(t.base_url), t.gateway() as http:
        with http.stream("GET", f"/ops/workers/{name}/logs", params=params, timeout=None) as response:
            _write(checked(response).iter_bytes())


@app.command()
@targeted
def restart(
    t: Target,
    name: Name,
    output: OutputOpt = Output.table,
) -> None:
    """Restart a server or worker: in a cluster its pod is deleted and its Deployment or Job replaces it."""
    if t.cluster:
        with cluster_errors():
            uid = _cluster(t).restart(name)
        result: dict[str, Any] = {"name": name, "deleted_pod_uid": uid}
        message = f"deleted pod {name}; its Deployment or Job starts a replacement"
    else:
        with gateway_errors(t.base_url), t.gateway() as http:
            result = checked(http.post(f"/ops/workers/{name}/restart", timeout=600)).json()
        message = f"restarted {name}: {result['state']}, pid {result.get('pid')}"
    emit(output, result, names=[name], table=lambda _wide: message)


# `workers status`, the old name of `workers list`.
app.command("status", hidden=True)(list_workers)
