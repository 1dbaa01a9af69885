"""Interactive storytelling: time to first token, streaming speed and its steadiness, as a reader sees them."""

from __future__ import annotations

from typing import Any

from kubeinfer.bench.client import ChatClient, StreamResult
from kubeinfer.bench.profiles.base import (
    TEMPLATE_MARGIN_TOKENS,
    ProfileContext,
    filler_text,
    fit_prompt,
    guarded,
    judged,
    mean,
    rounded,
)
from kubeinfer.resources.benchmark_matrix import InteractiveProfile, ProfileResult

#: Long enough that prompt processing, not HTTP and templating, dominates the time to first token.
PROMPT_TOKENS = 320
QUICK_RUNS = 2


@guarded
def run(ctx: ProfileContext) -> ProfileResult:
    """Stream `runs` story continuations of `maxTokens` tokens each and average what the client saw."""
    cfg = ctx.profiles.interactive
    runs = min(cfg.runs, QUICK_RUNS) if ctx.quick else cfg.runs
    with ctx.client() as client:
        prompt, max_tokens = story_prompt(client, ctx.max_context, cfg.max_tokens)
        client.stream_chat(prompt, 4, cache_prompt=False)
        ctx.log(f"interactive: {runs} runs of {max_tokens} tokens")
        results = []
        for index in range(runs):
            result = measure_once(client, prompt, max_tokens, seed=index)
            ctx.log(
                f"interactive run {index + 1}/{runs}: ttft {result.ttft_seconds}s, {result.tokens_per_second} tok/s"
            )
            results.append(result)
    metrics = summarize(results)
    return judged(metrics, failures(metrics, cfg))


def story_prompt(client: ChatClient, max_context: int, max_tokens: int) -> tuple[list[dict[str, str]], int]:
    """A story opening of about PROMPT_TOKENS tokens and a generation length that fit one slot together."""
    prompt_tokens = min(PROMPT_TOKENS, max_context // 2)
    generate = max(2, min(max_tokens, max_context - prompt_tokens - TEMPLATE_MARGIN_TOKENS))
    opening = fit_prompt(client, filler_text(prompt_tokens, topic="the lighthouse town"), prompt_tokens)
    content = f"Here are the notes of a chronicle:\n{opening}\n\nContinue the story in about {generate} words."
    return [{"role": "user", "content": content}], generate


def measure_once(client: ChatClient, prompt: list[dict[str, str]], max_tokens: int, seed: int) -> StreamResult:
    """One fresh run: no prompt cache (every run processes the whole prompt) and a fixed length."""
    return client.stream_chat(prompt, max_tokens, seed=seed, cache_prompt=False, ignore_eos=True)


def summarize(results: list[StreamResult]) -> dict[str, Any]:
    timings = [r.timings for r in results if r.timings is not None]
    return {
        "ttft_seconds": rounded(mean([r.ttft_seconds for r in results if r.ttft_seconds is not None])),
        "tokens_per_second": rounded(mean([t for r in results if (t := r.tokens_per_second) is not None]), 3),
        "variance_percent": rounded(mean([v for r in results if (v := r.variance_percent) is not None]), 2),
        "server_ttft_seconds": rounded(mean([t.prompt_ms / 1000 for t in timings])),
        "server_tokens_per_second": rounded(mean([t.predicted_per_second for t in timings]), 3),
        "runs": len(results),
    }


def failures(metrics: dict[str, Any], cfg: InteractiveProfile) -> list[str]:
    found = []
    ttft, tps, variance = metrics["ttft_seconds"], metrics["tokens_per_second"], metrics["variance_percent"]
    if ttft is None or tps is None:
        found.append("no tokens were streamed")
    if ttft is not None and ttft > cfg.max_time_to_first_token_seconds:
        found.append(f"time to first token {ttft:.2f}s > {cfg.max_time_to_first_token_seconds:g}s")
    if tps is not None and tps < cfg.min_tokens_per_second:
        found.append(f"{tps:.2f} tokens/s < {cfg.min_tokens_per_second:g}")
    if variance is not None and variance > cfg.max_variance_percent:
        found.append(f"inter-token variance {variance:.1f}% > {cfg.max_variance_percent:g}%")
    return found
