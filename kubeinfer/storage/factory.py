"""The blob store the settings name: the local data directory, or an S3-compatible bucket."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kubeinfer.storage.blobs import BlobStore, LocalBlobStore

if TYPE_CHECKING:
    from kubeinfer.settings import Settings, StorageSettings
    from kubeinfer.storage.s3 import S3BlobStore

S3_CACHE = ".s3-cache"


def remote_blob_store(storage: StorageSettings, local_root: Path) -> S3BlobStore | None:
    """The S3 store (its download cache under `local_root` unless set), or None when files live in `local_root`.

    The batch Job steps use this instead of `open_blob_store`: a `LocalBlobStore` clears its upload
    temporaries when created, which would break an upload in flight in the gateway on the shared volume.
    """
    if storage.backend == "local":
        return None
    from kubeinfer.storage.s3 import S3BlobStore

    return S3BlobStore.from_settings(storage, local_root / S3_CACHE)


def open_blob_store(settings: Settings, local_root: Path) -> BlobStore:
    """The gateway's store: `local_root` itself, or the bucket of `settings.storage`."""
    return remote_blob_store(settings.storage, local_root) or LocalBlobStore(local_root)
