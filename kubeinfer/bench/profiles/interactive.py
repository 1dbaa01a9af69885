"""Interactive storytelling: time to first token, streaming speed and its steadiness, as a reader sees them.

Without a sweep: `runs` story continuations one after another (the profile's classic measurement); with
one, the sweep's levels. See kubeinfer/bench/profiles/load.py for what both report.
"""

from __future__ import annotations

from typing import Any

from kubeinfer.bench.intervals import beyond, describe
from kubeinfer.bench.load.prompts import Framing
from kubeinfer.bench.profiles.base import TEMPLATE_MARGIN_TOKENS, ProfileContext, guarded, judged
from kubeinfer.bench.profiles.load import ProfileLoad, run_load
from kubeinfer.resources.benchmark_matrix import InteractiveProfile, ProfileResult

#: Long enough that prompt processing, not HTTP and templating, dominates the time to first token.
PROMPT_TOKENS = 320
QUICK_RUNS = 2
STORY = Framing(
    instruction="Here are the notes of a chronicle:\n{text}\n\nContinue the story in about {words} words.",
    topic="the lighthouse town",
    temperature=0.8,
)


def story_shape(max_context: int, max_tokens: int) -> tuple[int, int]:
    """Prompt and generation lengths of a story request that fit one slot together."""
    prompt_tokens = min(PROMPT_TOKENS, max_context // 2)
    generate = max(2, min(max_tokens, max_context - prompt_tokens - TEMPLATE_MARGIN_TOKENS))
    return prompt_tokens, generate


@guarded
def run(ctx: ProfileContext) -> ProfileResult:
    """Stream story continuations of `maxTokens` tokens (or the traffic scenario's) and summarize them."""
    cfg = ctx.profiles.interactive
    runs = min(cfg.runs, QUICK_RUNS) if ctx.quick else cfg.runs
    prompt_tokens, generate = story_shape(ctx.max_context, cfg.max_tokens)
    load = ProfileLoad("interactive", cfg, STORY, prompt_tokens, generate, runs, warm_up=True)
    outcome = run_load(ctx, load)
    metrics = outcome.metrics()
    metrics["runs"] = len(outcome.headline.run.records)
    return judged(metrics, failures(metrics, cfg))


def failures(metrics: dict[str, Any], cfg: InteractiveProfile) -> list[str]:
    found = []
    ttft, tps, variance = metrics["ttft_seconds"], metrics["tokens_per_second"], metrics["variance_percent"]
    if ttft is None or tps is None:
        found.append("no tokens were streamed")
    if beyond(metrics, "ttft_seconds", cfg.max_time_to_first_token_seconds, higher_is_better=False):
        found.append(
            f"time to first token {ttft:.2f}s{describe(metrics, 'ttft_seconds')} "
            f"> {cfg.max_time_to_first_token_seconds:g}s"
        )
    if beyond(metrics, "tokens_per_second", cfg.min_tokens_per_second, higher_is_better=True):
        found.append(f"{tps:.2f} tokens/s{describe(metrics, 'tokens_per_second')} < {cfg.min_tokens_per_second:g}")
    if beyond(metrics, "variance_percent", cfg.max_variance_percent, higher_is_better=False):
        found.append(
            f"inter-token variance {variance:.1f}%{describe(metrics, 'variance_percent')} "
            f"> {cfg.max_variance_percent:g}%"
        )
    return found
