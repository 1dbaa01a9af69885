"""`kubeinfer batch`: build batch JSONL from CSV, and submit/wait/download through any OpenAI-compatible API."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubeinfer.batch.tools import TemplateError, csv_requests, summarize

if TYPE_CHECKING:
    import openai

    from kubeinfer.storage.s3 import S3BlobStore

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Batch files and jobs (OpenAI Batch API).")

BaseUrl = Annotated[str, typer.Option(envvar="OPENAI_BASE_URL", help="Gateway URL, e.g. http://127.0.0.1:8080/v1")]
ApiKey = Annotated[str, typer.Option(envvar="OPENAI_API_KEY", help="API key of your project")]
TERMINAL = ("completed", "failed", "expired", "cancelled")


def _client(base_url: str, api_key: str) -> openai.OpenAI:
    import openai

    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=1)


@contextmanager
def _api_errors() -> Iterator[None]:
    """The gateway's error message and status, instead of a traceback."""
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        typer.echo(f"error: HTTP {exc.status_code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except openai.APIConnectionError as exc:
        typer.echo(f"error: cannot reach the gateway: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("from-csv")
def from_csv(
    csv_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV with a header row")],
    template: Annotated[str, typer.Option(help="Prompt with {column} placeholders")],
    model: Annotated[str, typer.Option()] = "smollm2-135m",
    system: Annotated[str | None, typer.Option(help="System prompt shared by every request")] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    id_column: Annotated[str | None, typer.Option(help="Column to use as custom_id (default row-N)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSONL file (default stdout)")] = None,
) -> None:
    """Turn each CSV row into one batch request."""
    out = output.open("w") if output else sys.stdout
    count = 0
    try:
        with csv_path.open(newline="") as rows:
            for request in csv_requests(rows, template, model, system, max_tokens, id_column):
                out.write(json.dumps(request, ensure_ascii=False) + "\n")
                count += 1
    except TemplateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        if output:
            out.close()
    typer.echo(f"{count} requests", err=True)


@app.command()
def submit(
    input_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    base_url: BaseUrl,
    api_key: ApiKey,
    endpoint: Annotated[str, typer.Option()] = "/v1/chat/completions",
) -> None:
    """Upload a JSONL file and create a batch; prints the batch id."""
    client = _client(base_url, api_key)
    with _api_errors(), input_path.open("rb") as handle:
        file = client.files.create(file=(input_path.name, handle), purpose="batch")
        batch = client.batches.create(input_file_id=file.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]
    typer.echo(batch.id)


@app.command()
def wait(
    batch_id: str,
    base_url: BaseUrl,
    api_key: ApiKey,
    interval: Annotated[float, typer.Option(help="Seconds between polls")] = 2.0,
) -> None:
    """Poll until the batch ends; exit code 1 unless it completed."""
    client = _client(base_url, api_key)
    while True:
        with _api_errors():
            batch = client.batches.retrieve(batch_id)
        counts = batch.request_counts
        done = f"{counts.completed + counts.failed}/{counts.total}" if counts else "?"
        typer.echo(f"{batch.status} {done}", err=True)
        if batch.status in TERMINAL:
            break
        time.sleep(interval)
    if batch.errors and batch.errors.data:
        for error in batch.errors.data:
            typer.echo(f"line {error.line}: {error.code}: {error.message}", err=True)
    raise typer.Exit(0 if batch.status == "completed" else 1)


@app.command()
def download(
    batch_id: str,
    base_url: BaseUrl,
    api_key: ApiKey,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("results.jsonl"),
) -> None:
    """Save the output file (and `<output>.errors.jsonl` when some requests failed)."""
    client = _client(base_url, api_key)
    with _api_errors():
        batch = client.batches.retrieve(batch_id)
        if batch.output_file_id:
            client.files.content(batch.output_file_id).write_to_file(output)
            typer.echo(f"wrote {output}", err=True)
        if batch.error_file_id:
            errors = output.with_suffix(".errors.jsonl")
            client.files.content(batch.error_file_id).write_to_file(errors)
            typer.echo(f"wrote {errors}", err=True)
    if not batch.output_file_id and not batch.error_file_id:
        typer.echo(f"batch {batch_id} has no output ({batch.status})", err=True)
        raise typer.Exit(1)


@app.command()
def analyze(result_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Summarise a downloaded output or error file as JSON."""
    typer.echo(json.dumps(summarize(result_path), indent=2))


# --- steps of a BatchJob in a cluster, run by the operator's Jobs (docs/batch-cluster.md) --------------------

DataDir = Annotated[Path, typer.Option(help="The shared store: blobs in files/, shard logs in work/<batch>/")]


def _remote_store(data_dir: Path) -> S3BlobStore | None:
    """The bucket of `KUBEINFER_STORAGE__*` (docs/storage.md); None when the files live on the volume."""
    from kubeinfer.settings import get_settings
    from kubeinfer.storage.factory import remote_blob_store

    return remote_blob_store(get_settings().storage, data_dir / "files")


def _input(data_dir: Path, input_file_id: str) -> Path:
    """The input on local disk: on the shared volume, or downloaded from the bucket once into its cache there."""
    remote = _remote_store(data_dir)
    return remote.local_path(input_file_id) if remote else data_dir / "files" / input_file_id


def _publish(data_dir: Path, file_ids: list[str | None]) -> None:
    """With a bucket, move the merged files from the volume into it, where the gateway serves them from."""
    remote = _remote_store(data_dir)
    for file_id in file_ids:
        if remote is not None and file_id is not None:
            remote.adopt(file_id, data_dir / "files" / file_id)


@contextmanager
def _storage_errors() -> Iterator[None]:
    """An unusable bucket fails the step with its reason (the Job retries), not with a traceback."""
    from kubeinfer.storage.s3 import StorageUnavailable

    try:
        yield
    except StorageUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("validate", hidden=True)
def validate_step(
    batch_id: Annotated[str, typer.Option()],
    input_file_id: Annotated[str, typer.Option()],
    endpoint: Annotated[str, typer.Option()],
    data_dir: DataDir,
    result: Annotated[str, typer.Option(help="ConfigMap to write the result to")],
) -> None:
    """Validate a BatchJob's input file; the result names the model and counts the requests."""
    from kubeinfer.batch.validation import validate_input
    from kubeinfer.cli.cell import write_result

    with _storage_errors():
        path = _input(data_dir, input_file_id)
    if not path.is_file():
        error = {"code": "file_not_found", "message": f"input file {input_file_id} does not exist", "line": None}
        write_result(result, {"ok": False, "total": 0, "model": None, "errors": [error | {"param": "input_file_id"}]})
        return
    report = validate_input(path, endpoint)
    write_result(result, {"ok": report.ok, "total": report.total, "model": report.model, "errors": report.errors})
    typer.echo(f"batch {batch_id}: {report.total} requests, {len(report.errors)} problems")


@app.command("worker", hidden=True)
def worker_step(
    batch_id: Annotated[str, typer.Option()],
    input_file_id: Annotated[str, typer.Option()],
    endpoint: Annotated[str, typer.Option()],
    data_dir: DataDir,
    model_install: Annotated[str, typer.Option(help="ModelInstall whose status lists the server endpoints")],
    shards: Annotated[int, typer.Option(min=1)],
    index: Annotated[int, typer.Option(envvar="JOB_COMPLETION_INDEX", min=0)],
    progress: Annotated[str, typer.Option(help="ConfigMap name prefix; shard i writes <prefix>-<i>")],
    concurrency: Annotated[int, typer.Option(min=0, help="0 = 2 x slots of all replicas / shards")] = 0,
    request_deadline: Annotated[
        float, typer.Option(min=0.001, help="Seconds a request may go unanswered before it is abandoned and retried")
    ] = 300.0,
) -> None:
    """Run one shard of a BatchJob against every replica of its model; resumable after a kill."""
    import asyncio

    from kubeinfer.batch.pool import EndpointPool
    from kubeinfer.batch.shard_worker import ShardProgress, ShardWorker, WorkerConfig
    from kubeinfer.batch.shards import BatchLayout
    from kubeinfer.cli.cell import write_result

    with _storage_errors():
        path = _input(data_dir, input_file_id)
    if not path.is_file():
        typer.echo(f"error: input file {path} is missing", err=True)
        raise typer.Exit(1)

    def report(state: ShardProgress) -> None:
        write_result(f"{progress}-{state.index}", state.as_json())

    async def resolve() -> list[str]:
        import os

        from kubeinfer.cluster.endpoints import install_endpoints

        namespace = os.environ.get("POD_NAMESPACE", "default")
        return await asyncio.to_thread(install_endpoints, namespace, model_install)

    async def main() -> ShardProgress:
        pool = EndpointPool(resolve, timeout=request_deadline)
        try:
            worker = ShardWorker(
                BatchLayout(data_dir, batch_id), path, endpoint, pool, WorkerConfig(concurrency=concurrency), report
            )
            return await worker.run(index, shards)
        finally:
            await pool.aclose()

    done = asyncio.run(main())
    typer.echo(f"shard {index}/{shards}: {done.completed} completed, {done.failed} failed of {done.total}")


@app.command("merge", hidden=True)
def merge_step(
    batch_id: Annotated[str, typer.Option()],
    input_file_id: Annotated[str, typer.Option()],
    data_dir: DataDir,
    result: Annotated[str, typer.Option(help="ConfigMap to write the result to")],
    missing: Annotated[str, typer.Option(help="error code for requests without a line; '' writes none")] = "",
) -> None:
    """Merge the shard logs into the batch's output and error files, in input order."""
    from kubeinfer.batch.merge import merge_batch
    from kubeinfer.batch.shards import BatchLayout
    from kubeinfer.cli.cell import write_result

    with _storage_errors():
        merged = merge_batch(BatchLayout(data_dir, batch_id), _input(data_dir, input_file_id), missing or None)
        _publish(data_dir, [merged.output_file_id, merged.error_file_id])
    write_result(result, merged.as_json())
    typer.echo(f"batch {batch_id}: {merged.completed} completed, {merged.failed} failed of {merged.total}")


@app.command("clean", hidden=True)
def clean_step(
    batch_id: Annotated[str, typer.Option()],
    input_file_id: Annotated[str, typer.Option(help="unused; every batch step takes it")],  # noqa: ARG001
    data_dir: DataDir,
) -> None:
    """Remove a deleted BatchJob's shard logs and locks; its input, output and error files stay."""
    import shutil

    from kubeinfer.batch.shards import BatchLayout

    work = BatchLayout(data_dir, batch_id).work
    shutil.rmtree(work, ignore_errors=True)
    if work.exists():
        typer.echo(f"error: could not remove {work}", err=True)
        raise typer.Exit(1)
    typer.echo(f"batch {batch_id}: shard logs removed")
