"""`kubeinfer batch`: create, list, get, wait, cancel, download and analyze batches (the OpenAI Batch API).

Every command takes the same target options (kubeinfer.cli.ops_target): a gateway (`--base-url`,
`--api-key`) or a cluster's BatchJobs (`-n`, `--context`, `--kubeconfig`). Uploads and downloads move files,
which live behind the gateway, so `create` and `download` always go through one.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from kubeinfer.batch.tools import TemplateError, csv_requests, summarize
from kubeinfer.cli.common import err_console, fail
from kubeinfer.cli.ops_target import (
    Output,
    OutputOpt,
    Target,
    checked,
    cluster_errors,
    gateway_errors,
    targeted,
    when,
)
from kubeinfer.cli.output import emit
from kubeinfer.cli.progress import ReadProgress, byte_progress, count_progress, interactive

if TYPE_CHECKING:
    import openai

app = typer.Typer(no_args_is_help=True, help="Batches (OpenAI Batch API): create, list, get, wait, cancel, download.")
#: `kubeinfer batches`, the old name of the list/show/cancel half of this group, kept hidden for one release.
batches_app = typer.Typer(no_args_is_help=True, help="Old name of `kubeinfer batch` (list, show, cancel).")

BatchId = Annotated[str, typer.Argument(help="Batch id (batch-...)")]
Project = Annotated[str | None, typer.Option(help="Cluster only: list this project's batches only")]
OutFile = Annotated[Path | None, typer.Option("--out-file", "-O", help="Write to this file")]
LegacyOut = Annotated[Path | None, typer.Option("--output", "-o", hidden=True, help="Old spelling of -O")]
Interval = Annotated[float, typer.Option(min=0.1, help="Seconds between polls")]
TERMINAL = ("completed", "failed", "expired", "cancelled")
LIST_LIMIT = 100
FILES_NEED_GATEWAY = (
    "{what} moves files, which live behind the gateway: pass --base-url (or set OPENAI_BASE_URL) and --api-key; "
    "in a cluster that is the chart's gateway Service"
)


def _gateway_only(t: Target, what: str) -> None:
    if t.cluster:
        fail(FILES_NEED_GATEWAY.format(what=what))


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


def _client(t: Target) -> openai.OpenAI:
    import openai

    assert t.base_url is not None
    return openai.OpenAI(base_url=t.base_url, api_key=t.api_key or "", max_retries=1)


@contextmanager
def _api_errors() -> Iterator[None]:
    """The gateway's error message and status, instead of a traceback."""
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        fail(f"HTTP {exc.status_code}: {exc.message}")
    except openai.APIConnectionError as exc:
        fail(f"cannot reach the gateway: {exc}")


def _write_requests(
    csv_path: Path,
    template: str,
    model: str,
    system: str | None,
    max_tokens: int | None,
    id_column: str | None,
    out: Any,
) -> int:
    count = 0
    try:
        with csv_path.open(newline="") as rows:
            for request in csv_requests(rows, template, model, system, max_tokens, id_column):
                out.write(json.dumps(request, ensure_ascii=False) + "\n")
                count += 1
    except TemplateError as exc:
        fail(str(exc), code=2)
    return count


def from_csv(
    csv_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV with a header row")],
    template: Annotated[str, typer.Option(help="Prompt with {column} placeholders")],
    model: Annotated[str, typer.Option()] = "smollm2-135m",
    system: Annotated[str | None, typer.Option(help="System prompt shared by every request")] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    id_column: Annotated[str | None, typer.Option(help="Column to use as custom_id (default row-N)")] = None,
    out_file: Annotated[Path | None, typer.Option("--out-file", "-O", help="JSONL file (default stdout)")] = None,
    legacy_output: LegacyOut = None,
) -> None:
    """Turn each CSV row into one batch request (JSONL), without submitting it."""
    destination = out_file or legacy_output
    if destination is not None:
        with destination.open("w") as out:
            count = _write_requests(csv_path, template, model, system, max_tokens, id_column, out)
    else:
        count = _write_requests(csv_path, template, model, system, max_tokens, id_column, sys.stdout)
    err_console.print(f"{count} requests", highlight=False)


def _upload(t: Target, path: Path) -> str:
    """POST the file to /files with a byte bar as it is sent; returns its id."""
    with (
        byte_progress() as progress,
        path.open("rb") as handle,
        gateway_errors(t.base_url),
        t.gateway() as http,
    ):
        task = progress.add_task(f"upload {path.name}", total=path.stat().st_size)
        # httpx streams a file it can read in chunks; the wrapper counts them as they go out.
        reader = cast(IO[bytes], ReadProgress(handle, progress, task))
        response = http.post(
            "/files", files={"file": (path.name, reader, "application/jsonl")}, data={"purpose": "batch"}, timeout=None
        )
        file_id: str = checked(response).json()["id"]
    return file_id


@app.command()
@targeted
def create(
    t: Target,
    input_path: Annotated[
        Path | None, typer.Argument(exists=True, dir_okay=False, help="Requests, one JSON object a line")
    ] = None,
    from_csv_path: Annotated[
        Path | None,
        typer.Option("--from-csv", exists=True, dir_okay=False, help="Build the requests from this CSV instead"),
    ] = None,
    template: Annotated[str | None, typer.Option(help="With --from-csv: prompt with {column} placeholders")] = None,
    model: Annotated[str, typer.Option(help="With --from-csv: the model of every request")] = "smollm2-135m",
    system: Annotated[str | None, typer.Option(help="With --from-csv: system prompt of every request")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="With --from-csv: max_tokens of every request")] = None,
    id_column: Annotated[str | None, typer.Option(help="With --from-csv: column to use as custom_id")] = None,
    endpoint: Annotated[str, typer.Option()] = "/v1/chat/completions",
    wait_for_end: Annotated[
        bool, typer.Option("--wait", help="Wait until the batch ends (exit 1 unless completed)")
    ] = False,
    interval: Interval = 2.0,
    out_file: Annotated[
        Path | None, typer.Option("--out-file", "-O", help="With --wait: download the output to this file")
    ] = None,
    output: OutputOpt = Output.name,
) -> None:
    """Upload a JSONL file (or one built from a CSV) and create a batch; prints the batch id.

    Example: kubeinfer batch create --from-csv examples/reviews.csv --template "Sentiment of: {review}" --wait
    -O results.jsonl
    """
    _gateway_only(t, "batch create")
    if (input_path is None) == (from_csv_path is None):
        fail("give a JSONL file or --from-csv CSV (one of them)", code=2)
    if from_csv_path is not None and template is None:
        fail("--from-csv needs --template", code=2)
    if out_file is not None and not wait_for_end:
        fail("-O/--out-file needs --wait (or use `kubeinfer batch download ID -O FILE` later)", code=2)
    with tempfile.TemporaryDirectory(prefix="kubeinfer-batch-") as scratch:
        if from_csv_path is not None:
            assert template is not None
            input_path = Path(scratch) / f"{from_csv_path.stem}.jsonl"
            with input_path.open("w") as out:
                count = _write_requests(from_csv_path, template, model, system, max_tokens, id_column, out)
            err_console.print(f"{count} requests from {from_csv_path}", highlight=False)
        assert input_path is not None
        file_id = _upload(t, input_path)
    with _api_errors():
        batch = _client(t).batches.create(input_file_id=file_id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]
    body = batch.model_dump(mode="json")
    emit(output, body, names=[batch.id], table=lambda _wide: batch.id)
    if wait_for_end:
        final = _wait(t, batch.id, interval)
        if out_file is not None and final["status"] == "completed":
            _download(t, batch.id, out_file)
        raise typer.Exit(0 if final["status"] == "completed" else 1)


def _list_rows(t: Target, project: str | None) -> list[dict[str, Any]]:
    if t.cluster:
        with cluster_errors():
            return [b.as_json() for b in _cluster(t).list(project)]
    with gateway_errors(t.base_url), t.gateway() as http:
        data = checked(http.get("/batches", params={"limit": LIST_LIMIT})).json()["data"]
    return [_from_gateway(b) for b in data]


def _list_table(rows: list[dict[str, Any]], wide: bool) -> Table | str:
    if not rows:
        return "no batches"
    columns = ["ID", "STATUS", "MODEL", "DONE", "FAILED", "TOTAL", "CREATED"]
    table = Table(*columns, *(["PROJECT", "WORKERS"] if wide else []))
    for row in rows:
        cells = [
            row["id"],
            row["status"],
            row["model"] or "-",
            str(row["completed"]),
            str(row["failed"]),
            str(row["total"]),
            when(row["created_at"]),
        ]
        if wide:
            cells += [row["project"] or "-", str(row["workers"] or "-")]
        table.add_row(*cells)
    return table


@app.command("list")
@targeted
def list_batches(
    t: Target,
    project: Project = None,
    output: OutputOpt = Output.table,
) -> None:
    """Batches, newest first (a gateway lists your project's; a cluster lists every project's)."""
    rows = _list_rows(t, project)
    emit(output, rows, names=[r["id"] for r in rows], table=lambda wide: _list_table(rows, wide))


def _fetch(t: Target, batch_id: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(the whole object, its summary row, its errors) from the cluster's BatchJob or the gateway's Batch."""
    if t.cluster:
        from kubeinfer.cluster.batchjobs import summary_of

        with cluster_errors():
            body = _cluster(t).get(batch_id)
        return body, summary_of(body).as_json(), (body.get("status") or {}).get("errors") or []
    with gateway_errors(t.base_url), t.gateway() as http:
        body = checked(http.get(f"/batches/{batch_id}")).json()
    return body, _from_gateway(body), (body.get("errors") or {}).get("data") or []


@app.command()
@targeted
def get(
    t: Target,
    batch_id: BatchId,
    output: OutputOpt = Output.table,
) -> None:
    """One batch: status, counts and errors (-o json/yaml: the whole Batch object, or the BatchJob)."""
    body, row, errors = _fetch(t, batch_id)

    def table(_wide: bool) -> Table:
        shown = Table("FIELD", "VALUE", show_header=False)
        for key, value in row.items():
            if value is not None:
                shown.add_row(key, when(value) if key == "created_at" else str(value))
        for error in errors:
            shown.add_row("error", f"line {error.get('line')}: {error.get('code')}: {error.get('message')}")
        return shown

    emit(output, body, names=[row["id"]], table=table)


def _wait(t: Target, batch_id: str, interval: float) -> dict[str, Any]:
    """Poll until the batch ends, with a bar of its requests; prints its errors; returns its summary."""
    seen = ""
    with count_progress() as progress:
        task = progress.add_task(batch_id, total=None)
        while True:
            _body, row, errors = _fetch(t, batch_id)
            done = row["completed"] + row["failed"]
            progress.update(task, completed=done, total=row["total"] or None, description=f"{batch_id} {row['status']}")
            if not interactive() and row["status"] != seen:
                err_console.print(f"{batch_id} {row['status']} {done}/{row['total']}", highlight=False)
            seen = row["status"]
            if row["status"] in TERMINAL:
                break
            time.sleep(interval)
    if interactive():
        err_console.print(f"{batch_id} {row['status']} {done}/{row['total']}", highlight=False)
    for error in errors:
        err_console.print(
            f"line {error.get('line')}: {error.get('code')}: {error.get('message')}", highlight=False, markup=False
        )
    return row


@app.command()
@targeted
def wait(
    t: Target,
    batch_id: BatchId,
    interval: Interval = 2.0,
) -> None:
    """Wait until the batch ends, with a progress bar; exit code 1 unless it completed."""
    final = _wait(t, batch_id, interval)
    raise typer.Exit(0 if final["status"] == "completed" else 1)


@app.command()
@targeted
def cancel(
    t: Target,
    batch_id: BatchId,
    output: OutputOpt = Output.table,
) -> None:
    """Cancel a batch; what already finished is published as its output file."""
    if t.cluster:
        with cluster_errors():
            row = _cluster(t).cancel(batch_id).as_json()
    else:
        with gateway_errors(t.base_url), t.gateway() as http:
            row = _from_gateway(checked(http.post(f"/batches/{batch_id}/cancel")).json())
    emit(output, row, names=[row["id"]], table=lambda _wide: f"{row['id']}: {row['status']}")


def _download(t: Target, batch_id: str, out_file: Path) -> None:
    client = _client(t)
    with _api_errors():
        batch = client.batches.retrieve(batch_id)
        wanted = [(batch.output_file_id, out_file), (batch.error_file_id, out_file.with_suffix(".errors.jsonl"))]
        for file_id, path in wanted:
            if not file_id:
                continue
            with (
                byte_progress() as progress,
                client.files.with_streaming_response.content(file_id) as response,
                path.open("wb") as out,
            ):
                length = response.headers.get("content-length")
                task = progress.add_task(f"download {path.name}", total=int(length) if length else None)
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    progress.advance(task, len(chunk))
            err_console.print(f"wrote {path}", highlight=False)
    if not batch.output_file_id and not batch.error_file_id:
        fail(f"batch {batch_id} has no output ({batch.status})")


@app.command()
@targeted
def download(
    t: Target,
    batch_id: BatchId,
    out_file: Annotated[Path, typer.Option("--out-file", "-O", help="Output file")] = Path("results.jsonl"),
    legacy_output: LegacyOut = None,
) -> None:
    """Save the output file (and `<out-file>.errors.jsonl` when some requests failed)."""
    _gateway_only(t, "batch download")
    _download(t, batch_id, legacy_output or out_file)


@app.command()
def analyze(
    result_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A downloaded output or error file")],
    output: OutputOpt = Output.table,
) -> None:
    """Summarise a downloaded output or error file: counts, status codes, tokens, finish reasons."""
    summary = summarize(result_path)

    def table(_wide: bool) -> Table:
        shown = Table("FIELD", "VALUE", show_header=False)
        for key, value in summary.items():
            shown.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
        return shown

    emit(output, summary, names=[str(result_path)], table=table)


app.command("from-csv")(from_csv)

# Old spellings, hidden: `batch submit FILE`, `batch show ID`, and the `batches` group.
app.command("submit", hidden=True)(create)
app.command("show", hidden=True)(get)
batches_app.command("list")(list_batches)
batches_app.command("show")(get)
batches_app.command("get", hidden=True)(get)
batches_app.command("cancel")(cancel)
