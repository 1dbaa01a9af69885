"""A kubeconfig naming an API server that is not there: a loopback port nothing listens on."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_kubeconfig(path: Path, namespace: str | None = None) -> str:
    """Write the kubeconfig to `path`; returns the server URL it names."""
    server = f"https://127.0.0.1:{closed_port()}"
    context = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": context}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    return server
