"""Gateway metrics: HTTP requests and latency, and what proxied inference cost (tokens, TTFT, tokens/s)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from kubeinfer.metrics import vllm
from kubeinfer.metrics.usage import TokenUsage, usage_of

#: Route label of requests no route matched, so probing random paths cannot grow the label set.
UNMATCHED_ROUTE = "unmatched"
#: The proxied endpoints; the `endpoint` label takes only these values.
ENDPOINTS = ("chat/completions", "completions", "embeddings")
TOKEN_KINDS = ("prompt", "completion")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

REQUESTS = Counter(
    "kubeinfer_gateway_requests_total",
    "HTTP requests the gateway answered, by method, route template and status code",
    ["method", "route", "code"],
)
REQUEST_DURATION = Histogram(
    "kubeinfer_gateway_request_duration_seconds",
    "Time from receiving a request to sending the last byte of its response (a stream's whole length)",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
REQUESTS_IN_FLIGHT = Gauge("kubeinfer_gateway_requests_in_flight", "HTTP requests being answered now")
STREAM_TTFT = Histogram(
    "kubeinfer_gateway_stream_time_to_first_token_seconds",
    "Proxied streams: time from receiving the request to relaying the first generated token",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
STREAM_TOKENS_PER_SECOND = Histogram(
    "kubeinfer_gateway_stream_tokens_per_second",
    "Proxied streams: generated tokens per second after the first token, as the client received them",
    ["endpoint"],
    buckets=_RATE_BUCKETS,
)
TOKENS = Counter(
    "kubeinfer_gateway_tokens_total",
    "Tokens of proxied single requests by kind (prompt, completion), as the engine reported them",
    ["endpoint", "kind"],
)
CACHED_PROMPT_TOKENS = Counter(
    "kubeinfer_gateway_cached_prompt_tokens_total",
    "Prompt tokens of proxied requests that the engine reused from its prompt cache",
    ["endpoint"],
)

for _endpoint in ENDPOINTS:  # zero series up front, so rates and ratios answer before the first request
    CACHED_PROMPT_TOKENS.labels(_endpoint)
    for _kind in TOKEN_KINDS:
        TOKENS.labels(_endpoint, _kind)


def record_usage(endpoint: str, usage: TokenUsage | None) -> None:
    if usage is None:
        return
    TOKENS.labels(endpoint, "prompt").inc(usage.prompt)
    TOKENS.labels(endpoint, "completion").inc(usage.completion)
    CACHED_PROMPT_TOKENS.labels(endpoint).inc(usage.cached_prompt)


def record_answer(endpoint: str, model: str, content: bytes, seconds: float) -> None:
    """A plain (not streamed) answer of the engine, `seconds` after the request arrived: tokens, and vLLM's
    per-request metrics of `model`."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    usage = usage_of(body)
    record_usage(endpoint, usage)
    if (timings := vllm.timings_of(body)) is not None:
        vllm.observe_finished(model, seconds, usage, timings, vllm.finish_reason_of(body))


@dataclass
class StreamMeter:
    """Follows one relayed server-sent-event stream: when tokens arrived, and the usage of its last chunk.

    Pure bookkeeping over (bytes, time) pairs so it is tested without a server; `finish` records the metrics.
    With a `model`, the stream counts as running from its creation to `finish`, and a stream that ends with
    llama-server's `timings` also records vLLM's metrics (kubeinfer.metrics.vllm).
    """

    endpoint: str
    started: float
    model: str = ""
    tokens: int = 0
    first_token_at: float | None = None
    last_token_at: float | None = None
    usage: TokenUsage | None = None
    timings: vllm.EngineTimings | None = None
    finish_reason: str | None = None
    #: Seconds between consecutive relayed tokens (vLLM's inter-token latencies).
    gaps: list[float] = field(default_factory=list, repr=False)
    _buffer: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.model:
            vllm.running(self.model).inc()

    def feed(self, chunk: bytes, at: float) -> None:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        *events, self._buffer = self._buffer.split(b"\n\n")
        for event in events:
            self._event(event, at)

    def _event(self, event: bytes, at: float) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                continue
            try:
                data = json.loads(payload)
            except ValueError:
                continue
            if _has_token(data):
                self.tokens += 1
                if self.last_token_at is not None:
                    self.gaps.append(at - self.last_token_at)
                if self.first_token_at is None:
                    self.first_token_at = at
                self.last_token_at = at
            self.usage = usage_of(data) or self.usage
            self.timings = vllm.timings_of(data) or self.timings
            self.finish_reason = vllm.finish_reason_of(data) or self.finish_reason

    @property
    def ttft_seconds(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    @property
    def tokens_per_second(self) -> float | None:
        if self.first_token_at is None or self.last_token_at is None or self.tokens < 2:
            return None
        span = self.last_token_at - self.first_token_at
        return (self.tokens - 1) / span if span > 0 else None

    def finish(self, at: float | None = None) -> None:
        """Record the stream's metrics; `at` (when it ended) times vLLM's end-to-end latency."""
        self._finish_vllm(at)
        if (ttft := self.ttft_seconds) is not None:
            STREAM_TTFT.labels(self.endpoint).observe(ttft)
        if (rate := self.tokens_per_second) is not None:
            STREAM_TOKENS_PER_SECOND.labels(self.endpoint).observe(rate)
        usage = self.usage
        if usage is None and self.tokens:
            usage = TokenUsage(completion=self.tokens)  # the engine sent no counts: the relayed chunks are them
        record_usage(self.endpoint, usage)

    def _finish_vllm(self, at: float | None) -> None:
        if not self.model:
            return
        vllm.running(self.model).dec()
        if self.timings is None:
            return  # broken off before its last chunk, or not llama-server's (a vLLM replica records its own)
        vllm.observe_stream_tokens(self.model, self.ttft_seconds, self.gaps)
        ended = at if at is not None else self.last_token_at or self.started
        usage = self.usage
        if usage is None and self.tokens:
            usage = TokenUsage(completion=self.tokens)
        vllm.observe_finished(self.model, ended - self.started, usage, self.timings, self.finish_reason)


def _has_token(chunk: Any) -> bool:
    """A chunk carrying generated text: chat `delta.content` or completion `text`, non-empty."""
    if not isinstance(chunk, dict):
        return False
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(text, str) and text:
            return True
    return False
