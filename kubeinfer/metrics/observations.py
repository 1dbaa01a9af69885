"""What one finished request adds to the batch and vLLM families, decided in one place for every exporter.

A batch worker turns each finished request into a `RequestObservation`; `contributions` says which series it
adds to and by how much. The embedded gateway applies them to its prometheus-client objects, a cluster shard
folds them into its shard state (kubeinfer.metrics.shard_state), and the gateway's proxy uses the vLLM part for
single requests, so an observation counts the same wherever it is exported. No registry here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubeinfer.metrics import families as f
from kubeinfer.metrics.families import Family
from kubeinfer.metrics.usage import TokenUsage


@dataclass(frozen=True)
class EngineTimings:
    """llama-server's own split of a request (its `timings`): prompt processing and generation, in seconds."""

    prefill: float
    decode: float
    generated: int

    @property
    def inference(self) -> float:
        return self.prefill + self.decode


@dataclass(frozen=True)
class Contribution:
    """Add `value` to a counter, or observe it in a histogram, of `family` with `labels` (in its label order)."""

    family: Family
    labels: tuple[str, ...]
    value: float


@dataclass(frozen=True)
class RequestObservation:
    """One finished batch request as its worker saw it.

    `status`: completed, failed or expired (never sent). `seconds`: from sending it to its answer, retries
    included (None when never sent). `timings` come only from llama-server, so only its answers feed the
    vLLM families (a vLLM replica exports those itself).
    """

    status: str
    seconds: float | None = None
    retries: int = 0
    model: str = ""
    usage: TokenUsage | None = None
    timings: EngineTimings | None = None
    finish_reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        usage, timings = self.usage, self.timings
        return {
            "status": self.status,
            "seconds": self.seconds,
            "retries": self.retries,
            "model": self.model,
            "usage": None if usage is None else [usage.prompt, usage.completion, usage.cached_prompt],
            "timings": None if timings is None else [timings.prefill, timings.decode, timings.generated],
            "finish": self.finish_reason,
        }

    @classmethod
    def from_json(cls, data: Any) -> RequestObservation:
        """Raises ValueError naming the field that is missing or of the wrong type."""
        if not isinstance(data, dict):
            raise ValueError("an observation must be a JSON object")
        status = data.get("status")
        if status not in f.REQUEST_STATUSES:
            raise ValueError(f"status must be one of {', '.join(f.REQUEST_STATUSES)}, not {status!r}")
        seconds = data.get("seconds")
        if seconds is not None:
            seconds = _non_negative(seconds, "seconds")
        usage = data.get("usage")
        timings = data.get("timings")
        finish = data.get("finish")
        if finish is not None and finish not in f.FINISH_REASONS:
            raise ValueError(f"finish must be one of {', '.join(f.FINISH_REASONS)} or null, not {finish!r}")
        model = data.get("model", "")
        if not isinstance(model, str):
            raise ValueError("model must be a string")
        return cls(
            status=status,
            seconds=seconds,
            retries=int(_non_negative(data.get("retries", 0), "retries")),
            model=model,
            usage=None
            if usage is None
            else TokenUsage(*(int(_non_negative(v, "usage")) for v in _triple(usage, "usage"))),
            timings=None if timings is None else _timings(timings),
            finish_reason=finish,
        )


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, not {value!r}")
    return float(value)


def _triple(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError(f"{name} must be a list of three numbers")
    return value


def _usage(value: Any) -> TokenUsage:
    prompt, completion, cached = (int(_non_negative(v, "usage")) for v in _triple(value, "usage"))
    return TokenUsage(prompt, completion, cached)


def _timings(value: Any) -> EngineTimings:
    prefill, decode, generated = (_non_negative(v, "timings") for v in _triple(value, "timings"))
    return EngineTimings(prefill, decode, int(generated))


def vllm_contributions(
    model: str, e2e_seconds: float, usage: TokenUsage | None, timings: EngineTimings, finish_reason: str | None
) -> Iterator[Contribution]:
    """A request llama-server finished: vLLM's per-request histograms and counters.

    Queue time is what llama-server did not spend computing (waiting for a free slot, and the transport);
    prefill and decode are its own `timings`.
    """
    labels = (model, f.LLAMACPP)
    yield Contribution(f.E2E_REQUEST_LATENCY, labels, e2e_seconds)
    if finish_reason is not None:
        yield Contribution(f.REQUEST_SUCCESS, (*labels, finish_reason), 1)
    if usage is not None:
        yield Contribution(f.REQUEST_PROMPT_TOKENS, labels, usage.prompt)
        yield Contribution(f.REQUEST_GENERATION_TOKENS, labels, usage.completion)
        yield Contribution(f.PROMPT_TOKENS, labels, usage.prompt)
        yield Contribution(f.GENERATION_TOKENS, labels, usage.completion)
        yield Contribution(f.PREFIX_CACHE_QUERIES, labels, usage.prompt)
        yield Contribution(f.PREFIX_CACHE_HITS, labels, usage.cached_prompt)
    yield Contribution(f.REQUEST_QUEUE_TIME, labels, max(0.0, e2e_seconds - timings.inference))
    yield Contribution(f.REQUEST_PREFILL_TIME, labels, timings.prefill)
    yield Contribution(f.REQUEST_DECODE_TIME, labels, timings.decode)
    yield Contribution(f.REQUEST_INFERENCE_TIME, labels, timings.inference)
    if timings.generated > 1:
        yield Contribution(f.REQUEST_TIME_PER_OUTPUT_TOKEN, labels, timings.decode / (timings.generated - 1))


def contributions(observation: RequestObservation) -> Iterator[Contribution]:
    """Everything one finished batch request adds: kubeinfer's batch families, and vLLM's for llama-server's."""
    yield Contribution(f.BATCH_REQUESTS, (observation.status,), 1)
    if observation.retries:
        yield Contribution(f.BATCH_RETRIES, (), observation.retries)
    if observation.seconds is None:
        return
    yield Contribution(f.BATCH_REQUEST_DURATION, (), observation.seconds)
    if observation.status != "completed":
        return
    usage = observation.usage
    if usage is not None:
        yield Contribution(f.BATCH_TOKENS, ("prompt",), usage.prompt)
        yield Contribution(f.BATCH_TOKENS, ("completion",), usage.completion)
        yield Contribution(f.BATCH_CACHED_PROMPT_TOKENS, (), usage.cached_prompt)
    if observation.timings is not None:
        yield from vllm_contributions(
            observation.model, observation.seconds, usage, observation.timings, observation.finish_reason
        )
