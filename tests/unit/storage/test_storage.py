"""Blob stores (streamed, size-limited, hashed, atomic) and the SQLite metadata store.

The contract tests run against both stores: the local directory and `S3BlobStore` talking to a real
S3-compatible server (moto) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.settings import Settings, StorageSettings
from kubeinfer.storage.blobs import FILE_MODE, BlobStore, FileTooLargeError, LocalBlobStore, _process_umask
from kubeinfer.storage.factory import open_blob_store, remote_blob_store
from kubeinfer.storage.files import FileNotFound, FileService
from kubeinfer.storage.records import BatchRecord, FileRecord, MetadataStore
from kubeinfer.storage.s3 import S3BlobStore, StorageUnavailable
from testbed.s3 import S3Server, s3_server

MiB = 1024 * 1024
PART = 5 * MiB  # S3's smallest part, so the multipart tests stay small


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def _s3_store(s3: S3Server, tmp_path: Path, bucket: str | None = None) -> S3BlobStore:
    return S3BlobStore(
        bucket or s3.new_bucket(), tmp_path / "cache", endpoint_url=s3.endpoint_url, region="us-east-1", part_size=PART
    )


@pytest.fixture(params=["local", "s3"])
def store_and_leftovers(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[BlobStore, Callable[[], list[str]]]:
    """A store and what it keeps besides its published blobs (temporaries, unfinished uploads)."""
    if request.param == "local":
        local = LocalBlobStore(tmp_path / "blobs")
        return local, lambda: [p.name for p in local.tmp.iterdir()]
    server: S3Server = request.getfixturevalue("s3")
    store = _s3_store(server, tmp_path)
    return store, lambda: server.pending_uploads(store.bucket) + [p.name for p in store.cache.glob(".*")]


@pytest.fixture
def store(store_and_leftovers: tuple[BlobStore, Callable[[], list[str]]]) -> BlobStore:
    return store_and_leftovers[0]


def test_put_stream_hashes_and_publishes(store_and_leftovers: tuple[BlobStore, Callable[[], list[str]]]) -> None:
    store, leftovers = store_and_leftovers
    blob = asyncio.run(store.put_stream("file-1", chunks(b"ab", b"cd"), max_bytes=10))
    assert (blob.bytes, blob.sha256) == (4, hashlib.sha256(b"abcd").hexdigest())
    assert b"".join(store.iter_bytes("file-1")) == b"abcd"
    assert store.local_path("file-1").read_bytes() == b"abcd"
    assert leftovers() == []


def test_published_blobs_follow_the_umask_so_pods_of_another_user_can_read_them(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; a published blob gets the process's ordinary mode (FILE_MODE, from the umask)."""
    store = LocalBlobStore(tmp_path / "blobs")
    asyncio.run(store.put_stream("file-1", chunks(b"ab"), max_bytes=10))
    source = tmp_path / "produced"
    source.write_bytes(b"cd")
    source.chmod(0o600)
    store.adopt("file-2", source)
    assert FILE_MODE == 0o666 & ~_process_umask()
    for key in ("file-1", "file-2"):
        assert store.local_path(key).stat().st_mode & 0o777 == FILE_MODE


def test_multipart_stream_round_trips(store_and_leftovers: tuple[BlobStore, Callable[[], list[str]]]) -> None:
    store, leftovers = store_and_leftovers
    parts = [bytes([i]) * MiB for i in range(12)]  # 12 MiB: two full parts and a short last one
    blob = asyncio.run(store.put_stream("file-big", chunks(*parts), max_bytes=20 * MiB))
    assert (blob.bytes, blob.sha256) == (12 * MiB, hashlib.sha256(b"".join(parts)).hexdigest())
    assert hashlib.sha256(b"".join(store.iter_bytes("file-big"))).hexdigest() == blob.sha256
    assert leftovers() == []


def test_oversized_stream_leaves_nothing_behind(
    store_and_leftovers: tuple[BlobStore, Callable[[], list[str]]],
) -> None:
    """Six 1 MiB chunks against a 5.5 MiB limit: S3 has already received a 5 MiB part when the limit trips."""
    store, leftovers = store_and_leftovers
    with pytest.raises(FileTooLargeError):
        asyncio.run(store.put_stream("file-2", chunks(*[b"x" * MiB] * 6), max_bytes=PART + MiB // 2))
    assert not store.local_path("file-2").exists()
    with pytest.raises(FileNotFoundError):
        list(store.iter_bytes("file-2"))
    assert leftovers() == []


def test_a_failing_source_aborts_the_upload(store_and_leftovers: tuple[BlobStore, Callable[[], list[str]]]) -> None:
    store, leftovers = store_and_leftovers

    async def broken() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b"y" * MiB
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(store.put_stream("file-cut", broken(), max_bytes=20 * MiB))
    assert not store.local_path("file-cut").exists()
    assert leftovers() == []


@pytest.mark.parametrize("key", ["../etc", ".hidden", "a/b", ""])
def test_keys_cannot_escape_the_store(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.local_path(key)


def test_adopt_moves_a_finished_file(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "out.jsonl"
    source.write_bytes(b"line\n")
    blob = store.adopt("file-out", source)
    assert not source.exists()
    assert (blob.bytes, blob.sha256) == (5, hashlib.sha256(b"line\n").hexdigest())
    assert store.local_path("file-out").read_bytes() == b"line\n"
    assert b"".join(store.iter_bytes("file-out")) == b"line\n"


def test_delete_removes_and_tolerates_missing(store: BlobStore) -> None:
    asyncio.run(store.put_stream("file-del", chunks(b"gone"), max_bytes=10))
    assert store.local_path("file-del").exists()
    store.delete("file-del")
    store.delete("file-del")
    assert not store.local_path("file-del").exists()


def test_file_service_hides_other_projects(store: BlobStore, tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "db.sqlite")
    service = FileService(meta, store, max_upload_bytes=100)
    record = asyncio.run(service.upload("a", "in.jsonl", "batch", chunks(b"{}\n")))
    assert service.get("a", record.id).sha256 == hashlib.sha256(b"{}\n").hexdigest()
    assert b"".join(service.content("a", record.id)) == b"{}\n"
    with pytest.raises(FileNotFound):
        service.get("b", record.id)
    with pytest.raises(FileNotFound):
        service.delete("b", record.id)
    assert isinstance(service.delete("a", record.id), FileRecord)
    assert service.list("a", None, 10, None) == []
    assert not store.local_path(record.id).exists()


# --- local directory only ---------------------------------------------------------------------------------------


def test_stale_temporaries_are_removed_on_start(tmp_path: Path) -> None:
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "file-3.partial").write_bytes(b"half")
    LocalBlobStore(tmp_path)
    assert list((tmp_path / ".tmp").iterdir()) == []


# --- S3 only ----------------------------------------------------------------------------------------------------


def test_objects_are_named_prefix_slash_key(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    store = S3BlobStore.from_settings(s3.settings(bucket, prefix="/team-a/files/"), tmp_path)
    asyncio.run(store.put_stream("file-x", chunks(b"x"), max_bytes=10))
    assert s3.names(bucket) == ["team-a/files/file-x"]


def test_local_path_downloads_once_and_again_when_the_object_changes(s3: S3Server, tmp_path: Path) -> None:
    store = _s3_store(s3, tmp_path)
    asyncio.run(store.put_stream("file-c", chunks(b"first"), max_bytes=10))
    first = store.local_path("file-c")
    inode = first.stat().st_ino
    assert store.local_path("file-c") == first
    assert first.stat().st_ino == inode  # reused, not downloaded again
    asyncio.run(store.put_stream("file-c", chunks(b"second"), max_bytes=10))
    second = store.local_path("file-c")
    assert second != first
    assert second.read_bytes() == b"second"
    assert not first.exists()
    store.delete("file-c")
    assert list(store.cache.iterdir()) == []


def test_missing_bucket_is_a_clear_error(s3: S3Server, tmp_path: Path) -> None:
    store = _s3_store(s3, tmp_path, bucket="no-such-bucket")
    message = f"S3 bucket 'no-such-bucket' at {s3.endpoint_url} does not exist"
    with pytest.raises(StorageUnavailable, match=message):
        asyncio.run(store.put_stream("file-1", chunks(b"x"), max_bytes=10))
    with pytest.raises(StorageUnavailable, match=message):
        store.local_path("file-1")
    with pytest.raises(StorageUnavailable, match=message):
        store.iter_bytes("file-1")
    with pytest.raises(StorageUnavailable, match=message):
        store.check()


def test_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = S3BlobStore("b", tmp_path, endpoint_url=url, region="us-east-1", connect_timeout=1, max_attempts=1)
    with pytest.raises(StorageUnavailable, match=f"S3 endpoint of bucket 'b' at {url} is unreachable"):
        asyncio.run(store.put_stream("file-1", chunks(b"x"), max_bytes=10))


def test_missing_and_refused_credentials_are_clear_errors(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.new_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys from now on
    with pytest.raises(StorageUnavailable, match=r"S3 refused the credentials for bucket .* \(InvalidAccessKeyId\)"):
        asyncio.run(_s3_store(s3, tmp_path, bucket).put_stream("file-1", chunks(b"x"), max_bytes=10))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(
        StorageUnavailable, match="no S3 credentials .* set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    ):
        asyncio.run(_s3_store(s3, tmp_path, bucket).put_stream("file-1", chunks(b"x"), max_bytes=10))


def test_storage_settings_from_env_reach_the_factory_and_the_operator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert isinstance(open_blob_store(Settings(), tmp_path / "files"), LocalBlobStore)
    assert remote_blob_store(StorageSettings(), tmp_path) is None
    for name, value in {
        "BACKEND": "s3",
        "BUCKET": "files",
        "PREFIX": "prod/",
        "ENDPOINT_URL": "http://127.0.0.1:9",
        "CREDENTIALS_SECRET": "s3-keys",
    }.items():
        monkeypatch.setenv(f"KUBEINFER_STORAGE__{name}", value)
    settings = Settings()
    assert settings.storage.prefix == "prod"
    assert settings.operator.storage == settings.storage
    store = open_blob_store(settings, tmp_path / "files")
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.cache) == ("files", tmp_path / "files" / ".s3-cache")
    assert store.object_name("file-1") == "prod/file-1"


def test_s3_backend_without_a_bucket_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEINFER_STORAGE__BACKEND", "s3")
    with pytest.raises(ValidationError, match="storage.backend is s3 but no bucket is set"):
        Settings()
    monkeypatch.setenv("KUBEINFER_STORAGE__BACKEND", "ftp")
    with pytest.raises(ValidationError, match="'local' or 's3'"):
        Settings()


# --- metadata ---------------------------------------------------------------------------------------------------


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
