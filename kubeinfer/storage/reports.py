"""Matrix reports too large for a ConfigMap: kept in the configured store, named by a pointer.

A report lives at `reports/<namespace>/<name>/report.json`: under the data directory with the `local`
backend (pointer `store:reports/...`, resolved against the reader's data directory, the volume the gateway
and the operator share in a cluster), or as the object `<prefix>/reports/...` in the bucket with `s3`
(pointer `s3://<bucket>/<object>`, read with the reader's endpoint and credentials).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from kubeinfer.storage.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from kubeinfer.settings import StorageSettings

STORE_SCHEME = "store:"
S3_SCHEME = "s3://"


class ReportStoreError(RuntimeError):
    """The report cannot be written to or read from the store; the message names the store and the report."""


class ReportNotInStore(ReportStoreError, LookupError):
    """The store works but holds no report where the pointer says."""


def report_key(namespace: str, name: str) -> str:
    return f"reports/{namespace}/{name}/report.json"


def data_root(data_dir: Path | None, cache_dir: Path) -> Path:
    """The data directory `store:` pointers are relative to: the gateway's (`KUBEINFER_GATEWAY__DATA_DIR`)."""
    return data_dir or cache_dir / "gateway"


def put_report(storage: StorageSettings, root: Path, key: str, data: bytes) -> str:
    """Store `data` under `key`; returns the pointer that `read_report_bytes` resolves."""
    if storage.backend == "s3":
        return _s3_put(storage, root, key, data)
    path = _local_path(root, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ReportStoreError(f"cannot write the report to the data directory {root}: {exc}") from exc
    return f"{STORE_SCHEME}{key}"


def read_report_bytes(pointer: str, storage: StorageSettings, root: Path) -> bytes:
    """The report a `store:` or `s3://` pointer names; raises ReportNotInStore or ReportStoreError."""
    if pointer.startswith(S3_SCHEME):
        bucket, _, name = pointer.removeprefix(S3_SCHEME).partition("/")
        if not bucket or not name:
            raise ReportStoreError(f"report pointer {pointer!r} names no bucket and object")
        return _s3_get(storage, root, bucket, name)
    if not pointer.startswith(STORE_SCHEME):
        raise ReportStoreError(f"report pointer {pointer!r} is neither store:<path> nor s3://<bucket>/<object>")
    path = _local_path(root, pointer.removeprefix(STORE_SCHEME))
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ReportNotInStore(
            f"{pointer}: no file {path} in the data directory {root} (KUBEINFER_GATEWAY__DATA_DIR; in a cluster "
            "the batchData volume the operator writes to)"
        ) from None
    except OSError as exc:
        raise ReportStoreError(f"{pointer}: cannot read {path}: {exc}") from exc


def _local_path(root: Path, key: str) -> Path:
    relative = PurePosixPath(key)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ReportStoreError(f"report path {key!r} must be relative to the data directory, without '..'")
    return root / relative


def _s3_put(storage: StorageSettings, root: Path, key: str, data: bytes) -> str:
    from kubeinfer.storage.factory import S3_CACHE
    from kubeinfer.storage.s3 import S3BlobStore, StorageUnavailable

    store = S3BlobStore.from_settings(storage, root / "files" / S3_CACHE)
    name = f"{store.prefix}/{key}" if store.prefix else key
    try:
        with store._errors():  # noqa: SLF001 - the store's own translation of botocore failures
            store.client.put_object(Bucket=store.bucket, Key=name, Body=data, ContentType="application/json")
    except StorageUnavailable as exc:
        raise ReportStoreError(f"cannot write the report to s3://{store.bucket}/{name}: {exc}") from exc
    return f"{S3_SCHEME}{store.bucket}/{name}"


def _s3_get(storage: StorageSettings, root: Path, bucket: str, name: str) -> bytes:
    from botocore.exceptions import ClientError

    from kubeinfer.storage.factory import S3_CACHE
    from kubeinfer.storage.s3 import S3BlobStore, StorageUnavailable

    where = f"s3://{bucket}/{name}"
    if storage.backend != "s3":
        hint = "set KUBEINFER_STORAGE__BACKEND=s3, KUBEINFER_STORAGE__BUCKET, __ENDPOINT_URL and AWS credentials"
        raise ReportStoreError(f"the report is in {where} but no S3 store is configured here: {hint}")
    store = S3BlobStore(
        bucket,
        storage.cache_dir or root / "files" / S3_CACHE,
        prefix=storage.prefix,
        endpoint_url=storage.endpoint_url,
        region=storage.region,
        connect_timeout=storage.connect_timeout_seconds,
        max_attempts=storage.max_attempts,
    )
    try:
        with store._errors():  # noqa: SLF001
            try:
                return store.client.get_object(Bucket=bucket, Key=name)["Body"].read()
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404"):
                    raise ReportNotInStore(f"{where}: no such object in {store.where}") from None
                raise
    except StorageUnavailable as exc:
        raise ReportStoreError(f"cannot read the report {where}: {exc}") from exc
