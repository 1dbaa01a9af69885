"""Resumable downloads (kubeinfer.models.download) against loopback servers: cut, resumed, corrupted."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from kubeinfer.models.cache import ChecksumError, ModelCache
from kubeinfer.models.download import Download, DownloadError, download, partial_path
from kubeinfer.models.sources import ModelResolver
from testbed.hub import FILENAME, REPO, SHA256, Behaviour, HubServer


def _url(hub: HubServer) -> str:
    return f"{hub.endpoint}/{REPO}/resolve/main/{FILENAME}"


def test_cut_transfer_resumes_from_the_partial_file(endpoint: HubServer, smollm2_gguf: Path, tmp_path: Path) -> None:
    """A process that dies mid-transfer leaves a partial file; the next one asks only for the rest."""
    size = smollm2_gguf.stat().st_size
    endpoint.reset(Behaviour(cut_after=size // 3))
    job = Download(_url(endpoint), tmp_path / "model.gguf", SHA256)
    with pytest.raises(DownloadError, match="resumes from there"):
        download(job)
    kept = partial_path(job.dest).stat().st_size
    assert 0 < kept < size
    assert not job.dest.exists()

    seen: list[tuple[int, int | None]] = []
    assert download(job, lambda done, total, _rate: seen.append((done, total))) == SHA256
    first, second = endpoint.gets()
    assert second.range == f"bytes={kept}-"
    assert first.range is None
    assert second.bytes_sent == size - kept
    assert seen[-1] == (size, size)
    assert job.dest.stat().st_size == size
    assert not partial_path(job.dest).exists()


def test_corrupted_partial_fails_the_checksum_and_is_removed(
    endpoint: HubServer, smollm2_gguf: Path, tmp_path: Path
) -> None:
    job = Download(_url(endpoint), tmp_path / "model.gguf", SHA256)
    partial_path(job.dest).write_bytes(b"\0" * 4096)
    with pytest.raises(ChecksumError, match=f"expected sha256 {SHA256}"):
        download(job)
    assert not partial_path(job.dest).exists()
    assert not job.dest.exists()
    assert download(job) == SHA256  # the next attempt starts clean


def test_partial_longer_than_the_file_is_discarded(endpoint: HubServer, smollm2_gguf: Path, tmp_path: Path) -> None:
    job = Download(_url(endpoint), tmp_path / "model.gguf", SHA256)
    partial_path(job.dest).write_bytes(b"\0" * (smollm2_gguf.stat().st_size + 10))
    with pytest.raises(DownloadError, match="longer than the file"):
        download(job)
    assert not partial_path(job.dest).exists()


def test_http_error_names_the_status(endpoint: HubServer, tmp_path: Path) -> None:
    job = Download(f"{endpoint.endpoint}/{REPO}/resolve/main/absent.gguf", tmp_path / "x.gguf")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(job)


@pytest.fixture
def no_range_server(smollm2_gguf: Path) -> Iterator[str]:
    """Python's SimpleHTTPRequestHandler ignores Range and always answers 200 with the whole file."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(smollm2_gguf.parent))
    handler.log_message = lambda *_args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{smollm2_gguf.name}"
    server.shutdown()
    server.server_close()


def test_server_without_range_support_restarts_cleanly(no_range_server: str, tmp_path: Path) -> None:
    job = Download(no_range_server, tmp_path / "model.gguf", SHA256)
    partial_path(job.dest).write_bytes(b"GGUF" + b"\0" * 1000)
    assert download(job) == SHA256


def test_hf_source_resumes_across_resolver_instances(endpoint: HubServer, smollm2_gguf: Path, tmp_path: Path) -> None:
    """Two processes (here: two resolvers) share the partial file in the cache; the checksum is the Hub's ETag."""
    size = smollm2_gguf.stat().st_size
    source = f"hf://{REPO}/{FILENAME}"
    endpoint.reset(Behaviour(cut_after=size // 2))
    with pytest.raises(Exception, match="resumes from there"):
        ModelResolver(ModelCache(tmp_path)).resolve("m", "Q4_1", {"Q4_1": source})
    cached = ModelResolver(ModelCache(tmp_path)).resolve("m", "Q4_1", {"Q4_1": source})
    assert cached.sha256 == SHA256
    first, second = endpoint.gets()
    assert second.range is not None
    assert second.bytes_sent == size - int(second.range.removeprefix("bytes=").rstrip("-"))
