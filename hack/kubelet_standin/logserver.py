"""The kubelet's container-log endpoint, so `kubectl logs` and `read_namespaced_pod_log` work through the API server.

The API server answers `GET /api/v1/namespaces/NS/pods/POD/log` by calling the node's kubelet at
`https://<node address>:<status.daemonEndpoints.kubeletEndpoint.Port>/containerLogs/NS/POD/CONTAINER`. It
does not verify the kubelet's serving certificate unless started with `--kubelet-certificate-authority`
(the test control plane is not), so a self-signed one made with `openssl` at start is enough. Only that one
path is served: `tailLines`, `follow` and `limitBytes` are honoured, other kubelet options are ignored.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

FOLLOW_POLL_SECONDS = 0.2
CHUNK = 64 * 1024


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate and key for `host` (an IP address), made once per state directory."""
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    if not (cert.is_file() and key.is_file()):
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650"]
            + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=kubelet-standin"]
            + ["-addext", f"subjectAltName=IP:{host}"],
            check=True,
            capture_output=True,
        )
    return cert, key


def last_lines(data: bytes, count: int) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:]) if count > 0 else b""


#: (namespace, pod, container) to (log file, "is the container still running or restarting?").
LogLookup = Callable[[str, str, str], tuple[Path, Callable[[], bool]] | None]


def _handler(lookup: LogLookup, stopping: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._error(404, f"not served by the kubelet stand-in: {url.path}")
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            found = lookup(parts[1], parts[2], parts[3])
            if found is None:
                self._error(404, f"container {parts[3]} of pod {parts[1]}/{parts[2]} is not on this node")
                return
            path, alive = found
            try:
                tail = int(query["tailLines"]) if "tailLines" in query else None
                limit = int(query["limitBytes"]) if "limitBytes" in query else None
            except ValueError:
                self._error(400, "tailLines and limitBytes must be integers")
                return
            data = path.read_bytes() if path.is_file() else b""
            position = len(data)
            if tail is not None:
                data = last_lines(data, tail)
            if limit is not None:
                data = data[:limit]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()  # HTTP/1.0: the body ends when the connection closes, so a follow can stream
            try:
                self.wfile.write(data)
                self.wfile.flush()
                if query.get("follow") == "true":
                    self._follow(path, position, alive)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass

        def _follow(self, path: Path, position: int, alive: Callable[[], bool]) -> None:
            """Send what is appended until the container ends for good or the caller goes away."""
            while not stopping.is_set():
                running = alive()
                size = path.stat().st_size if path.is_file() else 0
                if size > position:
                    with path.open("rb") as handle:
                        handle.seek(position)
                        chunk = handle.read(min(CHUNK, size - position))
                    position += len(chunk)
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    continue
                if not running:
                    return
                time.sleep(FOLLOW_POLL_SECONDS)

        def _error(self, code: int, message: str) -> None:
            body = message.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            log.debug("kubelet api: " + format, *args)

    return Handler


class LogServer:
    """HTTPS on `host`, a free port unless given; `.port` is what the Node's daemonEndpoints advertise."""

    def __init__(self, host: str, state_dir: Path, lookup: LogLookup, port: int = 0) -> None:
        self._stopping = threading.Event()
        self.server = ThreadingHTTPServer((host, port), _handler(lookup, self._stopping))
        self.server.daemon_threads = True
        cert, key = self_signed(state_dir / "tls", host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="standin-kubelet-api", daemon=True)

    def start(self) -> LogServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
