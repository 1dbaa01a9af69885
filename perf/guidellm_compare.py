"""GuideLLM as a second opinion: its TTFT, inter-token latency and decode rate against kubeinfer's interactive profile.

Both drive the same real llama-server (one slot) with the same request shape: one streamed chat request at a time
(GuideLLM's `synchronous` profile), a prompt that leaves the same number of tokens in the KV cache, the same number
of generated tokens (`ignore_eos`), no prompt cache, llama-server's default temperature (0.8, as the profile sends).
They run in alternating rounds so that both meet the same spells of load on a shared machine, and each side's
figure is its own: kubeinfer's from the profile's request records, GuideLLM's from its JSON report
(`time_to_first_token_ms` and `inter_token_latency_ms`, means over successful requests; no warm-up phase: GuideLLM
0.8.1's warm-up and cool-down left out more requests than asked, and the server is warm from the profile's round).

- TTFT: mean time from sending a request to its first streamed token;
- inter-token latency: mean gap between streamed tokens (all gaps of all requests);
- decode rate: 1 / inter-token latency, tokens per second after the first.

GuideLLM builds prompts to a token count with a Hugging Face tokenizer; it gets the model's own, read from the GGUF
(transformers with the `gguf` package, in GuideLLM's venv), and no network. The server's compute threads leave a
core free (as in tests/engine/test_truth.py), so neither client's own work slows the engine it measures.
GuideLLM comes from `make guidellm` ($KUBEINFER_CACHE_DIR/guidellm/<version>/venv; GUIDELLM_BIN uses your own).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from kubeinfer.bench.profiles import PROFILE_RUNNERS, ProfileContext
from kubeinfer.engines.llamacpp_build import SDIST_VERSION
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig
from kubeinfer.resources.benchmark_matrix import Profiles
from kubeinfer.settings import Settings

GUIDELLM_VERSION = os.environ.get("GUIDELLM_VERSION", "0.8.1")
MODEL = "smollm2-135m"
SERVER_CONTEXT = 1024
TOLERANCE = 0.05
METRICS = ("ttft_seconds", "itl_seconds", "decode_tokens_per_second")


def main() -> int:
    args = parse_args()
    settings = Settings()
    binaries = settings.engines_root / SDIST_VERSION / "bin"
    model = args.model or settings.models_root / MODEL / f"{MODEL}.Q4_1.gguf"
    guidellm = args.guidellm or default_guidellm(settings.cache_dir)
    for path, fix in ((binaries / "llama-server", "make setup"), (model, "make setup"), (guidellm, "make guidellm")):
        if not path.is_file():
            print(f"missing {path}: run `{fix}` first", file=sys.stderr)
            return 2
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kubeinfer-guidellm-") as tmp:
        work = Path(tmp)
        tokenizer = export_tokenizer(guidellm, model, work / "tokenizer")
        config = ServerConfig(model_path=model, ctx_size=SERVER_CONTEXT, parallel=1, threads=args.threads, alias=MODEL)
        with LlamaServer(binaries / "llama-server", config, work / "server.log").start(timeout_seconds=120) as server:
            rounds = measure_rounds(server, guidellm, tokenizer, work, args)
    report = compare(rounds)
    report["details"] = {
        "cpus": os.cpu_count(),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "model": str(model),
        "server": {"threads": args.threads, "parallel": 1, "ctx_size": SERVER_CONTEXT},
        "guidellm": {"version": GUIDELLM_VERSION, "binary": str(guidellm), "profile": "synchronous"},
        "generated_tokens": args.max_tokens,
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report, args.out)
    return 0  # a benchmark reports; the verdict is `within_5_percent` in the JSON, not this exit code


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("results/bench/guidellm-comparison.json"))
    parser.add_argument("--model", type=Path, help="GGUF (default: the cached SmolLM2-135M Q4_1)")
    parser.add_argument("--guidellm", type=Path, help="guidellm executable (default: GUIDELLM_BIN, else the cache's)")
    parser.add_argument("--threads", type=int, default=max(1, len(os.sched_getaffinity(0)) - 1))
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens generated per request")
    parser.add_argument("--requests", type=int, default=4, help="measured requests per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating kubeinfer / GuideLLM rounds")
    return parser.parse_args()


def default_guidellm(cache_dir: Path) -> Path:
    if binary := os.environ.get("GUIDELLM_BIN"):
        return Path(binary)
    return cache_dir / "guidellm" / GUIDELLM_VERSION / "venv" / "bin" / "guidellm"


def export_tokenizer(guidellm: Path, model: Path, dest: Path) -> Path:
    """The model's tokenizer as a Hugging Face tokenizer folder, read from the GGUF by GuideLLM's own transformers."""
    script = (
        "import sys\nfrom transformers import AutoTokenizer\n"
        "AutoTokenizer.from_pretrained(sys.argv[1], gguf_file=sys.argv[2]).save_pretrained(sys.argv[3])\n"
    )
    python = guidellm.parent / "python"
    command = [str(python), "-c", script, str(model.parent), model.name, str(dest)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=offline_env())
    if completed.returncode != 0:
        raise RuntimeError(f"reading the tokenizer from {model} failed:\n{completed.stderr[-2000:]}")
    return dest


def offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def template_tokens(base_url: str) -> int:
    """Tokens the chat template adds around a user message (SmolLM2's adds a default system prompt)."""
    text = "Hello there"
    with httpx.Client(timeout=60) as http:
        plain = len(http.post(f"{base_url}/tokenize", json={"content": text}).json()["tokens"])
        body = {"messages": [{"role": "user", "content": text}], "max_tokens": 1, "cache_prompt": False}
        answer = http.post(f"{base_url}/v1/chat/completions", json=body).json()
    return int(answer["usage"]["prompt_tokens"]) - plain


def measure_rounds(
    server: LlamaServer, guidellm: Path, tokenizer: Path, work: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    ctx = ProfileContext(
        base_url=server.base_url,
        model=MODEL,
        profiles=Profiles.model_validate({"interactive": {"maxTokens": args.max_tokens, "runs": args.requests}}),
        server_pid=server.pid,
        max_context=SERVER_CONTEXT,
        log=lambda message: print(f"  {message}", flush=True),
        records=lambda _profile, sent: records.extend(sent),
    )
    overhead = template_tokens(server.base_url)
    rounds = []
    for index in range(args.rounds):
        records.clear()
        result = PROFILE_RUNNERS["interactive"](ctx)
        if result.status not in ("passed", "failed"):
            raise RuntimeError(f"interactive profile: {result.status}: {result.reason}")
        ours = kubeinfer_figures(records)
        theirs = run_guidellm(guidellm, tokenizer, server.base_url, ours["input_tokens"] - overhead, work, index, args)
        print(f"round {index + 1}: kubeinfer {ours}\n         guidellm  {theirs}", flush=True)
        rounds.append({"kubeinfer": ours, "guidellm": theirs})
    return rounds


def kubeinfer_figures(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r.get("error") is None and r.get("ttft_seconds") is not None]
    gaps = [gap for r in ok for gap in r["itl_seconds"]]
    itl = statistics.fmean(gaps)
    return {
        "requests": len(ok),
        "input_tokens": round(statistics.median(r["input_tokens"] for r in ok)),
        "output_tokens": round(statistics.median(r["output_tokens"] for r in ok)),
        "ttft_seconds": round(statistics.fmean(r["ttft_seconds"] for r in ok), 5),
        "itl_seconds": round(itl, 6),
        "decode_tokens_per_second": round(1 / itl, 3),
    }


def scenario(target: str, tokenizer: Path, prompt_tokens: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    return {
        "spec": {
            "backend": {
                "kind": "openai_http",
                "target": target,
                "model": MODEL,
                "request_format": "/v1/chat/completions",
                "extras": {"body": {"cache_prompt": False}},
            },
            "profile": {"kind": "synchronous"},
            "tokenizer": {"kind": "huggingface_auto", "model": str(tokenizer)},
            "data": [{"kind": "synthetic_text", "prompt_tokens": prompt_tokens, "output_tokens": args.max_tokens}],
            "data_loader": {"kind": "pytorch", "samples": args.requests},
            "constraints": [{"kind": "max_requests", "count": args.requests}],
            "outputs": [{"kind": "json", "path": str(out)}],
        }
    }


def run_guidellm(
    guidellm: Path, tokenizer: Path, target: str, prompt_tokens: int, work: Path, index: int, args: argparse.Namespace
) -> dict[str, Any]:
    out = work / f"guidellm-{index}.json"
    config = work / f"scenario-{index}.json"
    config.write_text(json.dumps(scenario(target, tokenizer, prompt_tokens, args, out)))
    command = [str(guidellm), "run", "--scenario", str(config), "--disable-console"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=offline_env(), timeout=900)
    if completed.returncode != 0 or not out.is_file():
        raise RuntimeError(f"guidellm failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    figures = guidellm_figures(json.loads(out.read_text()))
    if figures["requests"] != args.requests:
        raise RuntimeError(f"guidellm reported {figures['requests']} successful requests of {args.requests}")
    return figures


def guidellm_figures(report: dict[str, Any]) -> dict[str, Any]:
    (benchmark,) = report["benchmarks"]
    metrics = benchmark["metrics"]

    def successful(name: str) -> dict[str, Any]:
        return dict(metrics[name]["successful"])

    itl_ms = successful("inter_token_latency_ms")["mean"]
    return {
        "requests": successful("time_to_first_token_ms")["count"],
        "errors": len(benchmark["requests"]["errored"]),
        "input_tokens": round(successful("prompt_token_count")["median"]),
        "output_tokens": round(successful("output_token_count")["median"]),
        "ttft_seconds": round(successful("time_to_first_token_ms")["mean"] / 1000, 5),
        "itl_seconds": round(itl_ms / 1000, 6),
        "decode_tokens_per_second": round(1000 / itl_ms, 3),
    }


def compare(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: each side's median over the rounds and their ratio (kubeinfer / GuideLLM)."""
    report: dict[str, Any] = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name in METRICS:
        ours = statistics.median(r["kubeinfer"][name] for r in rounds)
        theirs = statistics.median(r["guidellm"][name] for r in rounds)
        ratio = ours / theirs
        report[name] = {
            "kubeinfer": ours,
            "guidellm": theirs,
            "ratio": round(ratio, 4),
            "within_5_percent": abs(ratio - 1) <= TOLERANCE,
        }
    report["input_tokens"] = {side: rounds[0][side]["input_tokens"] for side in ("kubeinfer", "guidellm")}
    return report


def print_summary(report: dict[str, Any], out: Path) -> None:
    for name in METRICS:
        figure = report[name]
        print(
            f"{name}: kubeinfer {figure['kubeinfer']}, GuideLLM {figure['guidellm']}, ratio {figure['ratio']:.3f} "
            f"(within 5%: {figure['within_5_percent']})"
        )
    print(f"prompt tokens per request (server's count): {report['input_tokens']} -> {out}")


if __name__ == "__main__":
    sys.exit(main())
