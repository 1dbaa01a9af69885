"""hf:// fetching through the real huggingface_hub client against a loopback Hub."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeinfer.models.hf import ModelFetchError, fetch_hf, parse_hf_uri
from tests.integration.hf_server import Behaviour, HubServer, Repo

pytestmark = pytest.mark.integration

REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
GATED = "acme/gated-model"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture(scope="module")
def hub(smollm2_gguf: Path) -> Iterator[HubServer]:
    repos = {
        REPO: Repo({FILENAME: smollm2_gguf}, sha256={FILENAME: SHA256}),
        GATED: Repo({FILENAME: smollm2_gguf}, token="hf_secret", sha256={FILENAME: SHA256}),
    }
    with HubServer(repos).running() as server:
        yield server


@pytest.fixture
def endpoint(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """A fresh log and behaviour per test, HF_ENDPOINT on the loopback Hub and no ambient token.

    huggingface_hub binds HF_ENDPOINT at import for its side requests (the agent-harness registry):
    its constants are set as that import would have set them, so nothing may leave the machine.
    """
    from huggingface_hub import constants

    hub.reset()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    template = hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    return hub


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
