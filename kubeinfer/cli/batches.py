"""`kubeinfer batches`: list, show and cancel batches, embedded (the gateway's API) or in a cluster (BatchJobs)."""

from __future__ import annotations

import time
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
    checked,
    cluster_errors,
    gateway_errors,
    print_json,
    target,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Batches: list, show, cancel.")

BatchId = Annotated[str, typer.Argument(help="Batch id (batch_...)")]
Project = Annotated[str | None, typer.Option(help="Cluster only: list this project's batches only")]
LIST_LIMIT = 100


def _cluster(t: Target) -> Any:
    from kubeinfer.cluster.batchjobs import ClusterBatches

    assert t.namespace is not None
    return ClusterBatches(t.namespace, t.api_client())


def _from_gateway(batch: dict[str, Any]) -> dict[str, Any]:
    """A Batch object (OpenAI's shape) with the fields of a BatchJob summary."""
    counts = batch.get("request_counts") or {}
    return {
        "id": batch["id"],
        "project": None,
        "status": batch["status"],
        "model": batch.get("model"),
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "total": counts.get("total", 0),
        "created_at": batch.get("created_at"),
        "workers": None,
    }


def _when(stamp: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


@app.command("list")
def list_batches(
    project: Project = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    output: OutputOpt = Output.table,
) -> None:
    """Batches, newest first (a gateway lists your project's; a cluster lists every project's)."""
    t = target(namespace, kubeconfig, base_url, api_key)
    if t.cluster:
        with cluster_errors():
            rows = [b.as_json() for b in _cluster(t).list(project)]
    else:
        with gateway_errors(t.base_url), t.gateway() as http:
            data = checked(http.get("/batches", params={"limit": LIST_LIMIT})).json()["data"]
        rows = [_from_gateway(b) for b in data]
    if output is Output.json:
        print_json(rows)
        return
    table = Table("ID", "PROJECT", "STATUS", "MODEL", "DONE", "FAILED", "TOTAL", "CREATED")
    for row in rows:
        table.add_row(
            row["id"],
            row["project"] or "-",
            row["status"],
            row["model"] or "-",
            str(row["completed"]),
            str(row["failed"]),
            str(row["total"]),
            _when(row["created_at"]),
        )
    console.print(table if rows else "no batches")


@app.command()
def show(
    batch_id: BatchId,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    output: OutputOpt = Output.table,
) -> None:
    """One batch: its status, counts and errors (the whole BatchJob or Batch object with --output json)."""
    t = target(namespace, kubeconfig, base_url, api_key)
    if t.cluster:
        from kubeinfer.cluster.batchjobs import summary_of

        with cluster_errors():
            body = _cluster(t).get(batch_id)
        row = summary_of(body).as_json()
        errors = (body.get("status") or {}).get("errors") or []
    else:
        with gateway_errors(t.base_url), t.gateway() as http:
            body = checked(http.get(f"/batches/{batch_id}")).json()
        row = _from_gateway(body)
        errors = (body.get("errors") or {}).get("data") or []
    if output is Output.json:
        print_json(body)
        return
    table = Table("FIELD", "VALUE", show_header=False)
    for key, value in row.items():
        if value is not None:
            table.add_row(key, _when(value) if key == "created_at" else str(value))
    for error in errors:
        table.add_row("error", f"line {error.get('line')}: {error.get('code')}: {error.get('message')}")
    console.print(table)


@app.command()
def cancel(
    batch_id: BatchId,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    output: OutputOpt = Output.table,
) -> None:
    """Cancel a batch; what already finished is published as its output file."""
    t = target(namespace, kubeconfig, base_url, api_key)
    if t.cluster:
        with cluster_errors():
            row = _cluster(t).cancel(batch_id).as_json()
    else:
        with gateway_errors(t.base_url), t.gateway() as http:
            row = _from_gateway(checked(http.post(f"/batches/{batch_id}/cancel")).json())
    if output is Output.json:
        print_json(row)
    else:
        console.print(f"{row['id']}: {row['status']}")
