"""hf:// fetching through the real huggingface_hub client against a loopback Hub."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest

from kubeinfer.models.hf import ModelFetchError, fetch_hf, parse_hf_uri
from testbed.hub import FILENAME, GATED, REPO, SHA256, Behaviour, HubServer


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_download_through_hf_endpoint_matches_checksum(endpoint: HubServer, tmp_path: Path) -> None:
    path = fetch_hf(REPO, FILENAME, tmp_path)

    assert sha256(path) == SHA256
    assert [r.range for r in endpoint.gets()] == [None]


def test_second_fetch_is_served_from_the_cache(endpoint: HubServer, tmp_path: Path) -> None:
    first = fetch_hf(REPO, FILENAME, tmp_path)
    second = fetch_hf(REPO, FILENAME, tmp_path)

    assert first == second
    assert len(endpoint.gets()) == 1


def test_interrupted_transfer_resumes_without_refetching_finished_bytes(endpoint: HubServer, tmp_path: Path) -> None:
    size = (endpoint.repos[REPO].files[FILENAME]).stat().st_size
    endpoint.reset(Behaviour(cut_after=40 * 1024 * 1024))

    path = fetch_hf(REPO, FILENAME, tmp_path)

    first, second = endpoint.gets()
    assert (first.range, first.bytes_sent) == (None, 40 * 1024 * 1024)
    assert second.range == f"bytes={first.bytes_sent}-"
    assert first.bytes_sent + second.bytes_sent == size
    assert sha256(path) == SHA256


def test_slow_transfer_reports_progress_to_completion(endpoint: HubServer, tmp_path: Path) -> None:
    endpoint.reset(Behaviour(bytes_per_second=40 * 1024 * 1024))
    seen: list[tuple[int, int | None]] = []
    started = time.monotonic()

    path = fetch_hf(REPO, FILENAME, tmp_path, progress=lambda done, total: seen.append((done, total)))

    assert time.monotonic() - started > 2.0
    assert len(seen) >= 5
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)


def test_gated_repo_needs_the_token(endpoint: HubServer, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match=f"hf://{GATED}/{FILENAME}: access denied"):
        fetch_hf(GATED, FILENAME, tmp_path)

    path = fetch_hf(GATED, FILENAME, tmp_path, token="hf_secret")

    assert sha256(path) == SHA256
    assert endpoint.gets()[-1].authorization == "Bearer hf_secret"


@pytest.mark.parametrize(
    ("repo", "filename", "revision", "message"),
    [
        ("nobody/missing-repo", FILENAME, None, "repository not found"),
        (REPO, "missing.gguf", None, "file not found in the repository"),
        (REPO, FILENAME, "v9.9", "revision not found"),
    ],
)
def test_unknown_repo_file_or_revision_gives_clear_error(
    endpoint: HubServer, tmp_path: Path, repo: str, filename: str, revision: str | None, message: str
) -> None:
    with pytest.raises(ModelFetchError, match=message) as excinfo:
        fetch_hf(repo, filename, tmp_path, revision=revision)

    assert f"hf://{repo}/{filename}" in str(excinfo.value)
    assert not endpoint.gets()


def test_unreachable_endpoint_gives_clear_error(
    endpoint: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    # huggingface_hub backs off for 23 s (1+2+4+8+8) before giving up; the outcome is the same without waiting
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)

    with pytest.raises(ModelFetchError, match=f"cannot reach http://127.0.0.1:{port}"):
        fetch_hf(REPO, FILENAME, tmp_path)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("hf://org/repo/model.Q4_K_M.gguf", ("org/repo", "model.Q4_K_M.gguf", None)),
        ("hf://org/repo/sub/dir/model.gguf@v1.0", ("org/repo", "sub/dir/model.gguf", "v1.0")),
        ("hf://org/repo@refs%2Fpr%2F1/model.gguf", ("org/repo", "model.gguf", "refs/pr/1")),
        ("hf://org/repo/model.gguf@refs/pr/1", ("org/repo", "model.gguf", "refs/pr/1")),
    ],
)
def test_parse_hf_uri(uri: str, expected: tuple[str, str, str | None]) -> None:
    assert parse_hf_uri(uri) == expected


@pytest.mark.parametrize("uri", ["hf://org/repo", "hf://org//file.gguf", "https://x/y/z", "hf://org/repo/f@"])
def test_parse_hf_uri_rejects_incomplete_sources(uri: str) -> None:
    with pytest.raises(ModelFetchError, match="hf://"):
        parse_hf_uri(uri)
