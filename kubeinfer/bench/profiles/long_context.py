"""Long context: how long a growing prompt takes to load (time to first token) and whether it still generates."""

from __future__ import annotations

from typing import Any

from kubeinfer.bench.client import ChatClient, Interrupted, ServerError
from kubeinfer.bench.profiles.base import (
    TEMPLATE_MARGIN_TOKENS,
    ProfileContext,
    filler_text,
    fit_prompt,
    guarded,
    interrupted,
    judged,
)
from kubeinfer.resources.benchmark_matrix import ProfileResult

QUESTION = "\n\nQuestion: in one sentence, what did entry 1 record?"
QUICK_SIZES = 2


@guarded
def run(ctx: ProfileContext) -> ProfileResult:
    """Load each configured context size in turn, stopping at the first that fails or is too slow."""
    cfg = ctx.profiles.long_context
    sizes, skipped = plan_sizes(cfg.context_sizes, ctx.max_context, ctx.quick)
    max_tokens = max(1, min(cfg.max_tokens, ctx.max_context // 4))
    metrics: dict[str, Any] = {
        "load_seconds_by_context": {},
        "max_context_ok": None,
        "initial_load_seconds": None,
        "skipped_context_sizes": skipped,
        "swap_used_bytes": None,
    }
    failures: list[str] = []
    with ctx.client() as client:
        for size in sizes:
            try:
                seconds = load_once(client, size, ctx.max_context, max_tokens)
            except Interrupted:
                return interrupted(metrics)
            except ServerError as exc:
                failures.append(f"generation failed at {size} tokens: {exc}")
                break
            ctx.log(f"long context {size} tokens: {seconds:.2f}s to first token")
            metrics["load_seconds_by_context"][str(size)] = round(seconds, 4)
            metrics["max_context_ok"] = size
            metrics["initial_load_seconds"] = round(seconds, 4)
            _track_swap(metrics, ctx)
            if seconds > cfg.max_initial_load_seconds:
                failures.append(f"loading {size} tokens took {seconds:.1f}s > {cfg.max_initial_load_seconds:g}s")
                break
    if metrics["max_context_ok"] is None and not failures:
        failures.append("no context size was generated")
    if metrics["swap_used_bytes"]:
        failures.append(f"the server swapped {metrics['swap_used_bytes']} bytes")
    return judged(metrics, failures)


def plan_sizes(configured: list[int], max_context: int, quick: bool) -> tuple[list[int], list[int]]:
    """(sizes to load, sizes recorded as skipped because one slot cannot hold them).

    When no configured size fits, the slot's own limit is tested instead, so the profile still says how
    long the largest usable context takes. Quick mode loads only the smallest sizes.
    """
    fitting = sorted(s for s in configured if s <= max_context)
    skipped = sorted(s for s in configured if s > max_context)
    if not fitting:
        fitting = [max_context]
    return (fitting[:QUICK_SIZES] if quick else fitting), skipped


def load_once(client: ChatClient, size: int, max_context: int, max_tokens: int) -> float:
    """Seconds until the first token of an answer to a prompt of about `size` tokens."""
    budget = min(size, max_context - max_tokens) - TEMPLATE_MARGIN_TOKENS - len(client.tokenize(QUESTION))
    document = fit_prompt(client, filler_text(budget, topic="the lorebook"), max(budget, 16))
    messages = [{"role": "user", "content": document + QUESTION}]
    result = client.stream_chat(messages, max_tokens, temperature=0.0, cache_prompt=False, ignore_eos=True)
    if result.ttft_seconds is None:
        raise ServerError(f"no token generated (finish reason {result.finish_reason})")
    return result.ttft_seconds


def _track_swap(metrics: dict[str, Any], ctx: ProfileContext) -> None:
    if (memory := ctx.read_memory()) is None:
        return
    _rss, _peak, swap = memory
    metrics["swap_used_bytes"] = max(metrics["swap_used_bytes"] or 0, swap)
