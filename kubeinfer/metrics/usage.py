"""Token counts of one engine answer, read from OpenAI `usage` or, failing that, llama-server's `timings`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenUsage:
    prompt: int = 0
    completion: int = 0
    #: Prompt tokens the engine reused from its cache instead of processing them again.
    cached_prompt: int = 0


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_of(body: Any) -> TokenUsage | None:
    """None when the body reports no token counts (an error, an embedding without usage)."""
    if not isinstance(body, dict):
        return None
    usage = body.get("usage")
    found = body.get("timings")
    timings: dict[str, Any] = found if isinstance(found, dict) else {}
    if isinstance(usage, dict):
        details = usage.get("prompt_tokens_details")
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else _int(timings.get("cache_n"))
        return TokenUsage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")), cached)
    if timings:
        # llama-server's prompt_n counts only the tokens it processed; cache_n the ones it reused
        cached = _int(timings.get("cache_n"))
        return TokenUsage(_int(timings.get("prompt_n")) + cached, _int(timings.get("predicted_n")), cached)
    return None
