"""Check the interactive profile against independent figures: llama-bench's generation speed and the server's timings.

The profile's tokens/s must agree with `llama-bench -p 0 -n 64` (same model, same threads) within 15%, and its
client-side time to first token with llama-server's own `timings.prompt_ms` within 15%. On a shared machine the
load changes from minute to minute, so the two are measured in interleaved rounds (llama-bench while the server
idles, then one profile run) and the median of the per-round ratios is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from kubeinfer.bench.profiles import PROFILE_RUNNERS, ProfileContext
from kubeinfer.bench.profiles.interactive import PROMPT_TOKENS
from kubeinfer.engines.llamacpp_build import SDIST_VERSION
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig
from kubeinfer.resources.benchmark_matrix import Profiles
from kubeinfer.settings import Settings

TOLERANCE = 0.15
BENCH_REPETITIONS = 3
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
    load_before = os.getloadavg()[0]
    rounds = measure_rounds(binaries, model, args)
    report = compare(rounds)
    report["details"] = {
        "cpus": os.cpu_count(),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "model": str(model),
        "threads": args.threads,
        "llama_bench_args": f"-t {args.threads} -p 0 -n {args.bench_tokens} -d {PROMPT_TOKENS} -r {BENCH_REPETITIONS}",
        "profile_max_tokens": args.max_tokens,
        "rounds": rounds,
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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved llama-bench / profile rounds")
    return parser.parse_args()


def llama_bench_tg(binary: Path, model: Path, threads: int, tokens: int) -> float:
    """Mean generation tokens/s of `llama-bench -p 0 -n <tokens>` over BENCH_REPETITIONS repetitions.

    `-d` starts generation at the depth the interactive profile's prompt leaves in the KV cache, so both
    figures decode over the same context (attention over 320 cached tokens costs ~15% on this model).
    """
    command = [
        str(binary),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-p",
        "0",
        "-n",
        str(tokens),
        "-d",
        str(PROMPT_TOKENS),
        "-r",
        str(BENCH_REPETITIONS),
        "-o",
        "json",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    rows = json.loads(completed.stdout)
    return float(next(row["avg_ts"] for row in rows if row["n_gen"] == tokens))


def measure_rounds(binaries: Path, model: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per round: llama-bench's generation speed, then one interactive-profile run against a one-slot server."""
    profiles = Profiles.model_validate({"interactive": {"maxTokens": args.max_tokens, "runs": 1}})
    config = ServerConfig(model_path=model, ctx_size=SERVER_CONTEXT, parallel=1, threads=args.threads, alias=MODEL)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="kubeinfer-accuracy-") as tmp:
        server = LlamaServer(binaries / "llama-server", config, Path(tmp) / "server.log")
        with server.start(timeout_seconds=120):
            ctx = ProfileContext(
                base_url=server.base_url,
                model=MODEL,
                profiles=profiles,
                server_pid=server.pid,
                max_context=SERVER_CONTEXT,
                log=lambda message: print(f"  {message}", flush=True),
            )
            for index in range(args.rounds):
                bench_tps = llama_bench_tg(binaries / "llama-bench", model, args.threads, args.bench_tokens)
                result = PROFILE_RUNNERS["interactive"](ctx)
                if result.metrics.get("tokens_per_second") is None:
                    raise RuntimeError(f"interactive profile produced no tokens: {result.reason}")
                print(f"round {index + 1}: llama-bench {bench_tps:.1f} tok/s, profile {result.metrics}", flush=True)
                rounds.append({"llama_bench_tg_tokens_per_second": round(bench_tps, 3), **result.metrics})
    return rounds


def compare(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    tps_ratio = median([r["tokens_per_second"] / r["llama_bench_tg_tokens_per_second"] for r in rounds])
    ttft_ratio = median([r["ttft_seconds"] / r["server_ttft_seconds"] for r in rounds])
    return {
        "llama_bench_tg_tokens_per_second": round(median([r["llama_bench_tg_tokens_per_second"] for r in rounds]), 3),
        "profile_tokens_per_second": round(median([r["tokens_per_second"] for r in rounds]), 3),
        "tps_ratio": round(tps_ratio, 4),
        "tps_within_15_percent": abs(tps_ratio - 1) <= TOLERANCE,
        "profile_ttft_seconds": round(median([r["ttft_seconds"] for r in rounds]), 4),
        "server_prompt_seconds": round(median([r["server_ttft_seconds"] for r in rounds]), 4),
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
    cpus, load = report["details"]["cpus"], max(report["details"]["load_average_1m"])
    if cpus and load > cpus:
        print(f"warning: load average {load:.1f} on {cpus} CPUs; other work skews llama-bench and the server unequally")
    print(
        f"TTFT: profile {report['profile_ttft_seconds']:.3f}s, server prompt {report['server_prompt_seconds']:.3f}s "
        f"(ratio {report['ttft_ratio']:.3f}, within 15%: {report['ttft_within_15_percent']}) -> {out}"
    )


if __name__ == "__main__":
    sys.exit(main())
