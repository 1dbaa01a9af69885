"""Calibrate the sizing estimate against llama-server's measured peak RSS for the bundled model."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from kubeinfer.models.sizing import DEFAULT_N_UBATCH, estimate_memory, kv_cells, read_geometry

DEFAULT_POINTS = ((512, 1), (2048, 1), (8192, 1), (16384, 1), (512, 4), (2048, 4), (8192, 4), (16384, 4))
LOG_SIZES = re.compile(
    r"(CPU_Mapped model|CPU_REPACK model|CPU KV|CPU compute|CPU  output|CPU output)[^=]*=\s*([\d.]+) MiB"
)


def main() -> int:
    args = _parse_args()
    server = args.llama_server or _default_server()
    model = args.model or _default_model()
    _wait_for(server, args.wait_binary)
    geometry = read_geometry(model)
    points = [_measure_point(server, model, geometry, ctx, par, args.threads) for ctx, par in _points(args)]
    worst = max(abs(p["error_percent"]) for p in points)
    table = {
        "model": str(model),
        "llama_server": str(server),
        "threads": args.threads,
        "points": points,
        "max_abs_error_percent": round(worst, 2),
        "within_10_percent": worst <= 10.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=2) + "\n")
    for p in points:
        print(
            f"ctx={p['ctx_size']:>6} np={p['parallel']} estimated={p['estimated_bytes'] / 2**20:8.1f} MiB "
            f"measured={p['measured_peak_rss_bytes'] / 2**20:8.1f} MiB error={p['error_percent']:+.1f}%"
        )
    print(f"max |error| {worst:.2f}% -> {args.out}")
    return 0 if worst <= 10.0 else 1


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/sizing-calibration.json"))
    parser.add_argument("--model", type=Path, help="GGUF (default: bundled SmolLM2)")
    parser.add_argument("--llama-server", type=Path, help="default: the cached engine")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--points", help="comma-separated CTXxPARALLEL, e.g. 512x1,8192x4")
    parser.add_argument("--wait-binary", type=float, default=900.0, help="seconds to wait for the binary")
    return parser.parse_args()


def _points(args: argparse.Namespace) -> list[tuple[int, int]]:
    if not args.points:
        return list(DEFAULT_POINTS)
    return [(int(c), int(p)) for c, p in (item.split("x") for item in args.points.split(","))]


def _default_server() -> Path:
    from kubeinfer.engines.llamacpp_build import install_dir
    from kubeinfer.settings import Settings

    return install_dir(Settings().engines_root) / "bin" / "llama-server"


def _default_model() -> Path:
    from kubeinfer.engines.llamacpp_build import find_installed
    from kubeinfer.models.cache import ModelCache
    from kubeinfer.models.sources import ModelResolver
    from kubeinfer.settings import Settings

    settings = Settings()
    engine = find_installed(settings.engines_root)
    resolver = ModelResolver(ModelCache(settings.models_root), engine.llama_quantize if engine else None)
    return resolver.resolve("smollm2-135m", "Q4_1", {"Q4_1": "pypi:smollm2-135m"}).path


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not (path.is_file() and os.access(path, os.X_OK)):
        if time.monotonic() > deadline:
            sys.exit(f"llama-server not found at {path} after {seconds:.0f}s")
        time.sleep(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _measure_point(server: Path, model: Path, geometry: Any, ctx: int, par: int, threads: int) -> dict[str, Any]:
    estimate = estimate_memory(geometry, ctx, par)
    memory, buffers = _run_server(server, model, ctx, par, threads)
    peak = memory["VmHWM"]
    error = (estimate.total_bytes - peak) / peak * 100
    return {
        "ctx_size": ctx,
        "parallel": par,
        "estimated_bytes": estimate.total_bytes,
        "measured_peak_rss_bytes": peak,
        "error_percent": round(error, 2),
        "estimate": estimate.to_dict(),
        "llama_log_buffers_mib": buffers,
        "proc_status_bytes": memory,
    }


def _run_server(server: Path, model: Path, ctx: int, par: int, threads: int) -> tuple[dict[str, int], dict[str, float]]:
    """Start llama-server, touch its buffers with one chat, return (VmHWM bytes, logged buffer sizes)."""
    port = _free_port()
    cmd = [
        str(server),
        "-lv",
        "4",
        "-m",
        str(model),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "-c",
        str(ctx),
        "-np",
        str(par),
        "-t",
        str(threads),
    ]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, proc)
            _fill_slots(base, kv_cells(ctx, par) // par, par)
            memory = _memory_status(proc.pid)
        finally:
            _stop(proc)
        log.seek(0)
        text = log.read()
    buffers = {" ".join(name.split()): float(mib) for name, mib in LOG_SIZES.findall(text)}
    return memory, buffers


def _wait_healthy(base: str, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode} while loading")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("llama-server did not become healthy")


def _fill_slots(base: str, slot_ctx: int, parallel: int) -> None:
    """One chat per slot, all at once, each prompt as long as its slot allows up to a full ubatch.

    Concurrent prompts are batched together, so the server runs full n_ubatch graphs and touches
    its whole compute buffer, as a real workload with long prompts does.
    """
    words = max(8, min(DEFAULT_N_UBATCH + 64, slot_ctx - 64))
    body = {"messages": [{"role": "user", "content": "word " * words}], "max_tokens": 8}

    def chat(_: int) -> None:
        httpx.post(f"{base}/v1/chat/completions", json=body, timeout=300).raise_for_status()

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(chat, range(parallel)))


def _memory_status(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and the current RSS split into anonymous and file-backed pages, in bytes."""
    wanted = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in wanted:
            status[name] = int(value.split()[0]) * 1024
    return status


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
