"""Blob storage for uploaded and produced files: streamed in, size-limited, hashed, published atomically.

`BlobStore` is the seam for other backends (a shared volume mounted by workers, or S3): the batch
runner and the gateway only ever see this interface and local paths it hands out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Published files get the mode any file this process creates gets, not mkstemp's 0600: the store is shared with
#: the batch pods, which in a cluster may run as another user than the gateway (read at import, before threads).
FILE_MODE = 0o666 & ~_process_umask()


class FileTooLargeError(ValueError):
    """The upload exceeded the configured size limit; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"file exceeds the maximum size of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredBlob:
    key: str
    bytes: int
    sha256: str


class BlobStore(ABC):
    """Where file contents live, addressed by an opaque key (the file id)."""

    @abstractmethod
    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int) -> StoredBlob:
        """Store `chunks` under `key` without holding them in memory; all or nothing."""

    @abstractmethod
    def adopt(self, key: str, source: Path) -> StoredBlob:
        """Take ownership of a finished local file (a batch's output) by moving it into the store."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """A local path to read the blob from (a remote store would download to a cache first)."""

    @abstractmethod
    def iter_bytes(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The blob's content in chunks, for streaming downloads."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class LocalBlobStore(BlobStore):
    """Blobs as files under one directory; a temporary file is renamed into place once complete.

    The rename happens only after fsync, so a reader (or a restarted gateway) never sees half a file.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp.iterdir():  # left behind by a gateway killed mid-upload
            stale.unlink(missing_ok=True)

    def local_path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key

    def _publish(self, handle: BinaryIO, tmp_path: Path, key: str) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, self.local_path(key))
        _fsync_dir(self.root)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int) -> StoredBlob:
        digest = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix=f"{key}.")
        tmp_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise FileTooLargeError(max_bytes)
                    digest.update(chunk)
                    handle.write(chunk)
                self._publish(handle, tmp_path, key)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise
        return StoredBlob(key, size, digest.hexdigest())

    def adopt(self, key: str, source: Path) -> StoredBlob:
        size, sha = hash_file(source)
        dest = self.local_path(key)
        try:
            os.chmod(source, FILE_MODE)
            os.replace(source, dest)
        except OSError:  # another filesystem: copy through a temporary file, then rename
            fd, name = tempfile.mkstemp(dir=self.tmp, prefix=f"{key}.")
            with os.fdopen(fd, "wb") as handle, source.open("rb") as src:
                shutil.copyfileobj(src, handle, CHUNK)
                self._publish(handle, Path(name), key)
            source.unlink()
        _fsync_dir(self.root)
        return StoredBlob(key, size, sha)

    def iter_bytes(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with self.local_path(key).open("rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def delete(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)
