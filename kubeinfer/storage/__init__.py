"""Files and batch metadata: blob stores behind one interface, and a SQLite record store.

`kubeinfer.storage.s3` (boto3) is imported only when the S3 backend is configured.
"""

from kubeinfer.storage.blobs import BlobStore, FileTooLargeError, LocalBlobStore, StoredBlob
from kubeinfer.storage.factory import open_blob_store, remote_blob_store
from kubeinfer.storage.files import FileNotFound, FileService
from kubeinfer.storage.records import BatchRecord, FileRecord, MetadataStore, new_id

__all__ = [
    "BatchRecord",
    "BlobStore",
    "FileNotFound",
    "FileRecord",
    "FileService",
    "FileTooLargeError",
    "LocalBlobStore",
    "MetadataStore",
    "StoredBlob",
    "new_id",
    "open_blob_store",
    "remote_blob_store",
]
