"""`kubeinfer step validate|shard|merge|clean`: the pods of a BatchJob in a cluster (docs/batch-cluster.md).

Every step mounts the shared store (the batch data claim) at `--data-dir`; with a bucket configured
(`KUBEINFER_STORAGE__*`) the input comes from the bucket and the merged files go back into it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubeinfer.steps.results import write_result

if TYPE_CHECKING:
    from kubeinfer.storage.s3 import S3BlobStore

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


def validate(
    batch_id: Annotated[str, typer.Option()],
    input_file_id: Annotated[str, typer.Option()],
    endpoint: Annotated[str, typer.Option()],
    data_dir: DataDir,
    result: Annotated[str, typer.Option(help="ConfigMap to write the result to")],
) -> None:
    """Validate a BatchJob's input file; the result names the model and counts the requests."""
    from kubeinfer.batch.validation import validate_input

    with _storage_errors():
        path = _input(data_dir, input_file_id)
    if not path.is_file():
        error = {"code": "file_not_found", "message": f"input file {input_file_id} does not exist", "line": None}
        write_result(result, {"ok": False, "total": 0, "model": None, "errors": [error | {"param": "input_file_id"}]})
        return
    report = validate_input(path, endpoint)
    write_result(result, {"ok": report.ok, "total": report.total, "model": report.model, "errors": report.errors})
    typer.echo(f"batch {batch_id}: {report.total} requests, {len(report.errors)} problems")


def shard(
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


def merge(
    batch_id: Annotated[str, typer.Option()],
    input_file_id: Annotated[str, typer.Option()],
    data_dir: DataDir,
    result: Annotated[str, typer.Option(help="ConfigMap to write the result to")],
    missing: Annotated[str, typer.Option(help="error code for requests without a line; '' writes none")] = "",
) -> None:
    """Merge the shard logs into the batch's output and error files, in input order."""
    from kubeinfer.batch.merge import merge_batch
    from kubeinfer.batch.shards import BatchLayout

    with _storage_errors():
        merged = merge_batch(BatchLayout(data_dir, batch_id), _input(data_dir, input_file_id), missing or None)
        _publish(data_dir, [merged.output_file_id, merged.error_file_id])
    write_result(result, merged.as_json())
    typer.echo(f"batch {batch_id}: {merged.completed} completed, {merged.failed} failed of {merged.total}")


def clean(
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
