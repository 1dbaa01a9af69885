"""A loopback stand-in for the part of the Hugging Face Hub that hf_hub_download talks to."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 256 * 1024
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None
    status: int
    bytes_sent: int = 0


@dataclass
class Repo:
    files: dict[str, Path]
    token: str | None = None  # gated: requests must carry "Bearer <token>"
    sha256: dict[str, str] = field(default_factory=dict)

    def etag(self, name: str) -> str:
        if name not in self.sha256:
            self.sha256[name] = hashlib.sha256(self.files[name].read_bytes()).hexdigest()
        return self.sha256[name]


@dataclass
class Behaviour:
    """How the server misbehaves: throttle every body, or cut the first `cut_count` bodies after `cut_after`."""

    bytes_per_second: float | None = None
    cut_after: int | None = None
    cut_count: int = 1


class HubServer:
    """Serves `repos` under /{org}/{repo}/resolve/{revision}/{file} with the Hub's headers and errors."""

    def __init__(self, repos: dict[str, Repo], host: str = "127.0.0.1", advertise: str | None = None) -> None:
        """Bind to `host`; `advertise` is the address clients use (e.g. the pod bridge's host side)."""
        self.repos = repos
        self.behaviour = Behaviour()
        self.log: list[Request] = []
        self._cuts = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, 0), self._handler())
        self.host = advertise or host
        self._httpd.daemon_threads = True

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def reset(self, behaviour: Behaviour | None = None) -> None:
        with self._lock:
            self.log.clear()
            self.behaviour = behaviour or Behaviour()
            self._cuts = 0

    def gets(self) -> list[Request]:
        """File downloads only (huggingface_hub also asks /api/agent-harnesses once per process)."""
        return [r for r in self.log if r.method == "GET" and "/resolve/" in r.path]

    @contextmanager
    def running(self) -> Iterator[HubServer]:
        thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            self._httpd.server_close()
            thread.join(timeout=5)

    def take_cut(self) -> int | None:
        """The byte count to stop after for this body, or None to send it whole."""
        with self._lock:
            if self.behaviour.cut_after is None or self._cuts >= self.behaviour.cut_count:
                return None
            self._cuts += 1
            return self.behaviour.cut_after

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            hub = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the test reads HubServer.log instead."""

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        entry = Request(self.command, self.path, self.headers.get("Range"), self.headers.get("Authorization"), 200)
        self.hub.log.append(entry)
        match = _RESOLVE.match(self.path.split("?", 1)[0])
        if not match:
            return self._error(entry, 404, "RepoNotFound", "Not a resolve URL")
        repo = self.hub.repos.get(match["repo"])
        if repo is None:
            return self._error(entry, 401, "RepoNotFound", "Repository not found")
        if repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}":
            return self._error(entry, 401, "GatedRepo", "Access to this repository is restricted")
        if unquote(match["revision"]) not in ("main", COMMIT):
            return self._error(entry, 404, "RevisionNotFound", "Invalid rev id")
        name = unquote(match["filename"])
        if name not in repo.files:
            return self._error(entry, 404, "EntryNotFound", "Entry not found")
        self._send_file(entry, repo, name, body)

    def _error(self, entry: Request, status: int, code: str, message: str) -> None:
        entry.status = status
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if code == "EntryNotFound":
            self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, entry: Request, repo: Repo, name: str, body: bool) -> None:
        path = repo.files[name]
        size = path.stat().st_size
        start, end = self._range(size)
        if start >= size and self.headers.get("Range"):
            entry.status = 416
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        entry.status = 206 if self.headers.get("Range") else 200
        self.send_response(entry.status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{repo.etag(name)}"')
        self.send_header("X-Linked-Etag", f'"{repo.etag(name)}"')
        self.send_header("X-Linked-Size", str(size))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if entry.status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if body:
            self._write_body(entry, path, start, end)

    def _range(self, size: int) -> tuple[int, int]:
        match = _RANGE.match(self.headers.get("Range") or "")
        if not match:
            return 0, size
        return int(match[1]), min(size, int(match[2]) + 1) if match[2] else size

    def _write_body(self, entry: Request, path: Path, start: int, end: int) -> None:
        cut = self.hub.take_cut()
        rate = self.hub.behaviour.bytes_per_second
        with path.open("rb") as handle:
            handle.seek(start)
            while start + entry.bytes_sent < end:
                want = min(CHUNK, end - start - entry.bytes_sent)
                if cut is not None:
                    want = min(want, cut - entry.bytes_sent)
                    if want <= 0:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                self.wfile.write(handle.read(want))
                entry.bytes_sent += want
                if rate:
                    time.sleep(want / rate)


# --- pytest fixtures shared by the tests that fetch from the loopback Hub ----------------------------

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
