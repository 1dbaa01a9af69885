"""Blobs as objects `<prefix>/<key>` in an S3-compatible bucket, behind the same `BlobStore` seam.

Uploads stream into a multipart upload (the size limit is checked while streaming) and any failure aborts
it, so a refused or broken upload leaves neither an object nor orphaned parts. Batch runs read files from
local disk: `local_path` downloads an object once into a cache directory, under a name carrying its ETag,
so a changed object is fetched again and readers of an older copy are never disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from kubeinfer.storage.blobs import CHUNK, BlobStore, FileTooLargeError, StoredBlob, hash_file

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from kubeinfer.settings import StorageSettings

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_REFUSED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken", "403"}


class StorageUnavailable(RuntimeError):
    """The object store cannot be used (no such bucket, credentials refused, endpoint unreachable).

    A configuration or infrastructure problem, not the client's: the gateway answers 503 with this message.
    """


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobStore(BlobStore):
    def __init__(
        self,
        bucket: str,
        cache_dir: Path,
        *,
        prefix: str = "kubeinfer",
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = 8 * 1024 * 1024,
        connect_timeout: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache = cache_dir
        self.part_size = part_size
        self.where = f"bucket '{bucket}' at {endpoint_url or 'AWS S3'}"
        config = Config(connect_timeout=connect_timeout, retries={"max_attempts": max_attempts, "mode": "standard"})
        # A session of its own: boto3's default session caches the credentials it found first.
        session = boto3.session.Session(region_name=region)
        self.client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self.cache.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, storage: StorageSettings, cache_dir: Path) -> S3BlobStore:
        return cls(
            storage.bucket,
            storage.cache_dir or cache_dir,
            prefix=storage.prefix,
            endpoint_url=storage.endpoint_url,
            region=storage.region,
            part_size=storage.part_size,
            connect_timeout=storage.connect_timeout_seconds,
            max_attempts=storage.max_attempts,
        )

    def object_name(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """botocore's failures that mean "the store is misconfigured or down", as one clear exception."""
        try:
            yield
        except NoCredentialsError:
            raise StorageUnavailable(
                f"no S3 credentials for {self.where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from None
        except EndpointConnectionError as exc:
            raise StorageUnavailable(f"S3 endpoint of {self.where} is unreachable: {exc}") from None
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                raise StorageUnavailable(f"S3 {self.where} does not exist") from None
            if code in _REFUSED:
                raise StorageUnavailable(f"S3 refused the credentials for {self.where} ({code})") from None
            raise StorageUnavailable(f"S3 request to {self.where} failed: {exc}") from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 request to {self.where} failed: {exc}") from None

    def check(self) -> None:
        """Raise `StorageUnavailable` unless the bucket exists and the credentials are accepted."""
        with self._errors():
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) in ("404", "NoSuchBucket"):  # HEAD answers carry no error body
                    raise StorageUnavailable(f"S3 {self.where} does not exist") from None
                raise

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int) -> StoredBlob:
        name = self.object_name(key)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload: _Multipart | None = None
        try:
            with self._errors():
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise FileTooLargeError(max_bytes)
                    digest.update(chunk)
                    buffer += chunk
                    while len(buffer) >= self.part_size:
                        if upload is None:
                            upload = await asyncio.to_thread(_Multipart.create, self.client, self.bucket, name)
                        part = bytes(buffer[: self.part_size])
                        del buffer[: self.part_size]
                        await asyncio.to_thread(upload.send, part)
                if upload is None:
                    await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=name, Body=bytes(buffer))
                else:
                    if buffer:
                        await asyncio.to_thread(upload.send, bytes(buffer))
                    await asyncio.to_thread(upload.complete)
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return StoredBlob(key, size, digest.hexdigest())

    def adopt(self, key: str, source: Path) -> StoredBlob:
        name = self.object_name(key)
        size, sha = hash_file(source)
        transfer = TransferConfig(multipart_threshold=self.part_size, multipart_chunksize=self.part_size)
        with self._errors():
            self.client.upload_file(str(source), self.bucket, name, Config=transfer)
        source.unlink()
        return StoredBlob(key, size, sha)

    def _cached(self, key: str) -> list[Path]:
        return list(self.cache.glob(f"{key}~*"))

    def local_path(self, key: str) -> Path:
        """The object downloaded into the cache (reused while its ETag and size are unchanged).

        A missing object gives a path that does not exist, as the local store's does.
        """
        name = self.object_name(key)
        with self._errors():
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=name)
            except ClientError as exc:
                if _code(exc) not in ("404", "NoSuchKey"):
                    raise
                self.check()  # a 404 of a missing bucket looks the same
                return self.cache / key
            etag = str(head["ETag"])
            path = self.cache / f"{key}~{re.sub(r'[^A-Za-z0-9-]', '', etag)}"
            if path.is_file() and path.stat().st_size == head["ContentLength"]:
                return path
            self._download(name, etag, path)
        for stale in self._cached(key):
            if stale != path:
                stale.unlink(missing_ok=True)
        return path

    def _download(self, name: str, etag: str, path: Path) -> None:
        """Into a temporary file, then renamed: concurrent readers (other pods) never see half a file."""
        fd, tmp = tempfile.mkstemp(dir=self.cache, prefix=f".{path.name}.")
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=name, IfMatch=etag)["Body"]
            with os.fdopen(fd, "wb") as handle:
                for chunk in body.iter_chunks(CHUNK):
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def iter_bytes(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Opens the object now, so a missing object or an unusable store fails before streaming starts."""
        name = self.object_name(key)
        with self._errors():
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
            except ClientError as exc:
                if _code(exc) == "NoSuchKey":
                    raise FileNotFoundError(f"no object {name} in {self.where}") from None
                raise
        return self._stream(body, chunk_size)

    def _stream(self, body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors():
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        name = self.object_name(key)
        with self._errors():
            self.client.delete_object(Bucket=self.bucket, Key=name)
        for cached in self._cached(key):
            cached.unlink(missing_ok=True)


class _Multipart:
    """One multipart upload: parts sent in order, then completed, or aborted so no part stays stored."""

    def __init__(self, client: S3Client, bucket: str, name: str, upload_id: str) -> None:
        self.client, self.bucket, self.name, self.upload_id = client, bucket, name, upload_id
        self.parts: list[CompletedPartTypeDef] = []

    @classmethod
    def create(cls, client: S3Client, bucket: str, name: str) -> _Multipart:
        return cls(client, bucket, name, client.create_multipart_upload(Bucket=bucket, Key=name)["UploadId"])

    def send(self, data: bytes) -> None:
        number = len(self.parts) + 1
        answer = self.client.upload_part(
            Bucket=self.bucket, Key=self.name, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number})

    def complete(self) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.name, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        with contextlib.suppress(BotoCoreError, ClientError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.name, UploadId=self.upload_id)
