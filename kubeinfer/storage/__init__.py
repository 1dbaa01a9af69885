"""Files and batch metadata: blob stores behind one interface, and a SQLite record store."""

from kubeinfer.storage.blobs import BlobStore, FileTooLargeError, LocalBlobStore, StoredBlob
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
]
