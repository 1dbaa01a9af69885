"""Several real llama-server replicas of one model on this machine, as a ModelInstall's pods would be.

Shared by tests/engine/test_prefix_routing.py and perf/prefix_cache.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig

MODEL = "smollm2-135m"


@contextmanager
def llama_replicas(
    binary: Path, model_path: Path, workdir: Path, count: int = 2, parallel: int = 4, ctx_size: int = 4096
) -> Iterator[list[LlamaServer]]:
    """`count` llama-servers (one thread each, `parallel` slots), stopped on exit even if one was killed."""
    with ExitStack() as stack:
        servers = []
        for i in range(count):
            config = ServerConfig(model_path=model_path, ctx_size=ctx_size, parallel=parallel, threads=1, alias=MODEL)
            server = LlamaServer(binary, config, workdir / f"replica-{i}.log")
            stack.enter_context(server)
            servers.append(server.start(timeout_seconds=120))
        yield servers


def metric(server: LlamaServer, name: str) -> float:
    """One counter of the server's Prometheus endpoint, e.g. `llamacpp:tokens_predicted_total`."""
    for line in httpx.get(f"{server.base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in {server.base_url}/metrics")
