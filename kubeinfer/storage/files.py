"""Uploaded and produced files of each project: blob plus metadata record, deleted together."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterator

from kubeinfer.storage.blobs import BlobStore
from kubeinfer.storage.records import FileRecord, MetadataStore, new_id

#: Purposes a client may upload with; `batch_output` is produced by the gateway itself.
UPLOAD_PURPOSES = frozenset({"batch", "user_data"})


class FileNotFound(LookupError):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"No such File object: {file_id}")
        self.file_id = file_id


class FileService:
    def __init__(self, meta: MetadataStore, blobs: BlobStore, max_upload_bytes: int) -> None:
        self.meta = meta
        self.blobs = blobs
        self.max_upload_bytes = max_upload_bytes

    async def upload(self, project: str, filename: str, purpose: str, chunks: AsyncIterable[bytes]) -> FileRecord:
        if purpose not in UPLOAD_PURPOSES:
            raise ValueError(f"purpose must be one of {sorted(UPLOAD_PURPOSES)}, got '{purpose}'")
        file_id = new_id("file")
        blob = await self.blobs.put_stream(file_id, chunks, self.max_upload_bytes)
        return self.meta.add_file(FileRecord(file_id, project, filename, purpose, blob.bytes, blob.sha256))

    def rename(self, record: FileRecord, filename: str, purpose: str) -> FileRecord:
        record.filename, record.purpose = filename, purpose
        self.meta.save_file(record)
        return record

    def get(self, project: str, file_id: str) -> FileRecord:
        record = self.meta.get_file(file_id, project)
        if record is None:
            raise FileNotFound(file_id)
        return record

    def list(self, project: str, purpose: str | None, limit: int, after: str | None) -> list[FileRecord]:
        return self.meta.list_files(project, purpose, limit, after)

    def content(self, project: str, file_id: str) -> Iterator[bytes]:
        record = self.get(project, file_id)
        return self.blobs.iter_bytes(record.id)

    def delete(self, project: str, file_id: str) -> FileRecord:
        record = self.get(project, file_id)
        self.meta.delete_file(record.id)
        self.blobs.delete(record.id)
        return record
