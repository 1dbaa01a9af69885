"""Blob store (streamed, size-limited, hashed, atomic) and the SQLite metadata store."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubeinfer.storage.blobs import FileTooLargeError, LocalBlobStore
from kubeinfer.storage.files import FileNotFound, FileService
from kubeinfer.storage.records import BatchRecord, FileRecord, MetadataStore


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_put_stream_hashes_and_publishes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    blob = asyncio.run(store.put_stream("file-1", chunks(b"ab", b"cd"), max_bytes=10))
    assert (blob.bytes, blob.sha256) == (4, hashlib.sha256(b"abcd").hexdigest())
    assert b"".join(store.iter_bytes("file-1")) == b"abcd"
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_oversized_stream_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(FileTooLargeError):
        asyncio.run(store.put_stream("file-2", chunks(b"x" * 6, b"x" * 6), max_bytes=10))
    assert not store.local_path("file-2").exists()
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_stale_temporaries_are_removed_on_start(tmp_path: Path) -> None:
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "file-3.partial").write_bytes(b"half")
    LocalBlobStore(tmp_path)
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        LocalBlobStore(tmp_path).local_path("../etc")


def test_adopt_moves_a_finished_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    source = tmp_path / "out.jsonl"
    source.write_bytes(b"line\n")
    blob = store.adopt("file-out", source)
    assert not source.exists()
    assert blob.bytes == 5
    assert store.local_path("file-out").read_bytes() == b"line\n"


def test_metadata_is_scoped_by_project_and_paginated(tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "db.sqlite")
    for i in range(3):
        meta.add_batch(
            BatchRecord(id=f"batch-{i}", project="a", endpoint="e", input_file_id="f", completion_window="24h")
        )
    meta.add_batch(BatchRecord(id="batch-b", project="b", endpoint="e", input_file_id="f", completion_window="24h"))
    assert [b.id for b in meta.list_batches("a", 2)] == ["batch-2", "batch-1"]
    assert [b.id for b in meta.list_batches("a", 2, after="batch-1")] == ["batch-0"]
    assert meta.get_batch("batch-b", "a") is None
    assert meta.get_batch("batch-b", "b") is not None
    done = meta.get_batch("batch-0")
    assert done is not None
    done.status = "completed"
    meta.save_batch(done)
    assert [b.id for b in meta.unfinished_batches()] == ["batch-1", "batch-2", "batch-b"]
    meta.close()
    reopened = MetadataStore(tmp_path / "db.sqlite")
    assert reopened.get_batch("batch-0") is not None
    assert reopened.get_batch("batch-0").status == "completed"


def test_file_service_hides_other_projects(tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "db.sqlite")
    service = FileService(meta, LocalBlobStore(tmp_path / "blobs"), max_upload_bytes=100)
    record = asyncio.run(service.upload("a", "in.jsonl", "batch", chunks(b"{}\n")))
    assert service.get("a", record.id).sha256 == hashlib.sha256(b"{}\n").hexdigest()
    with pytest.raises(FileNotFound):
        service.get("b", record.id)
    with pytest.raises(FileNotFound):
        service.delete("b", record.id)
    assert isinstance(service.delete("a", record.id), FileRecord)
    assert service.list("a", None, 10, None) == []
