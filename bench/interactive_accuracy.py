"""Check the interactive profile against independent figures: llama-bench's generation speed and the server's timings.

The profile's tokens/s must agree with `llama-bench -p 0 -n 64` (same model, same threads) within 15%, and its
client-side time to first token with llama-server's own `timings.prompt_ms` within 15%. llama-bench runs before
the server starts and again after it stops, and the two are averaged, so a busy shared machine skews both sides
alike and never runs the two side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubeinfer.bench.profiles import PROFILE_RUNNERS, ProfileContext
from kubeinfer.engines.llamacpp_build import SDIST_VERSION
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig
from kubeinfer.resources.benchmark_matrix import Profiles
from kubeinfer.settings import Settings

TOLERANCE = 0.15
MODEL = "smollm2-135m"
SERVER_CONTEXT = 2048


def main() -> int:
    args = parse_args()
    settings = Settings()
    binaries = settings.engines_root / SDIST_VERSION / "bin"
    model = args.model or settings.models_root / MODEL / f"{MODEL}.Q4_1.gguf"
    for path in (binaries / "llama-bench", binaries / "llama-server", model):
        if not path.is_file():
            print(f"missing {path}: run `make setup` first", file=sys.stderr)
            return 2
    before = llama_bench_tg(binaries / "llama-bench", model, args.threads, args.bench_tokens)
    profile = interactive_profile(binaries / "llama-server", model, args.threads, args.max_tokens, args.runs)
    after = llama_bench_tg(binaries / "llama-bench", model, args.threads, args.bench_tokens)
    report = compare((before + after) / 2, profile)
    report["details"] = {
        "model": str(model),
        "threads": args.threads,
        "llama_bench_tg_runs": [round(before, 3), round(after, 3)],
        "llama_bench_args": f"-t {args.threads} -p 0 -n {args.bench_tokens}",
        "profile_metrics": profile,
        "profile_max_tokens": args.max_tokens,
        "profile_runs": args.runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report, args.out)
    return 0 if report["tps_within_15_percent"] and report["ttft_within_15_percent"] else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/interactive-accuracy.json"))
    parser.add_argument("--model", type=Path, help="GGUF (default: the cached SmolLM2-135M Q4_1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bench-tokens", type=int, default=64, help="llama-bench -n")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens generated per profile run")
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args()


def llama_bench_tg(binary: Path, model: Path, threads: int, tokens: int) -> float:
    """Mean generation tokens/s of `llama-bench -p 0 -n <tokens>` over its default five repetitions."""
    command = [str(binary), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(tokens), "-o", "json"]
    completed = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    rows = json.loads(completed.stdout)
    return float(next(row["avg_ts"] for row in rows if row["n_gen"] == tokens))


def interactive_profile(binary: Path, model: Path, threads: int, max_tokens: int, runs: int) -> dict[str, Any]:
    """The interactive profile's metrics against a fresh one-slot llama-server with the same threads."""
    profiles = Profiles.model_validate({"interactive": {"maxTokens": max_tokens, "runs": runs}})
    with tempfile.TemporaryDirectory(prefix="kubeinfer-accuracy-") as tmp:
        config = ServerConfig(model_path=model, ctx_size=SERVER_CONTEXT, parallel=1, threads=threads, alias=MODEL)
        with LlamaServer(binary, config, Path(tmp) / "server.log").start(timeout_seconds=120) as server:
            ctx = ProfileContext(
                base_url=server.base_url,
                model=MODEL,
                profiles=profiles,
                server_pid=server.pid,
                max_context=SERVER_CONTEXT,
                log=lambda message: print(f"  {message}", flush=True),
            )
            result = PROFILE_RUNNERS["interactive"](ctx)
    if result.metrics.get("tokens_per_second") is None:
        raise RuntimeError(f"interactive profile produced no tokens: {result.reason}")
    return result.metrics


def compare(bench_tps: float, metrics: dict[str, Any]) -> dict[str, Any]:
    tps_ratio = metrics["tokens_per_second"] / bench_tps
    ttft_ratio = metrics["ttft_seconds"] / metrics["server_ttft_seconds"]
    return {
        "llama_bench_tg_tokens_per_second": round(bench_tps, 3),
        "profile_tokens_per_second": metrics["tokens_per_second"],
        "tps_ratio": round(tps_ratio, 4),
        "tps_within_15_percent": abs(tps_ratio - 1) <= TOLERANCE,
        "profile_ttft_seconds": metrics["ttft_seconds"],
        "server_prompt_seconds": metrics["server_ttft_seconds"],
        "ttft_ratio": round(ttft_ratio, 4),
        "ttft_within_15_percent": abs(ttft_ratio - 1) <= TOLERANCE,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def print_summary(report: dict[str, Any], out: Path) -> None:
    print(
        f"tokens/s: llama-bench {report['llama_bench_tg_tokens_per_second']:.1f}, "
        f"profile {report['profile_tokens_per_second']:.1f} (ratio {report['tps_ratio']:.3f}, "
        f"within 15%: {report['tps_within_15_percent']})"
    )
    print(
        f"TTFT: profile {report['profile_ttft_seconds']:.3f}s, server prompt {report['server_prompt_seconds']:.3f}s "
        f"(ratio {report['ttft_ratio']:.3f}, within 15%: {report['ttft_within_15_percent']}) -> {out}"
    )


if __name__ == "__main__":
    sys.exit(main())
